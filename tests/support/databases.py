"""A private database per test (or per module), for tests whose rows must not meet other
tests' rows: tampering, bulk fills, or counts over a whole table. The async twin for tests that
run bots is ``tests.support.chaos.fresh_database``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import make_conninfo


@contextmanager
def own_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database ``{prefix}_<8 hex>`` on the test server, and its conninfo; dropped
    afterwards even if connections to it are still open (WITH FORCE), so a test that leaves a
    pool behind cannot keep it alive."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = make_conninfo(server_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    try:
        yield make_conninfo(server_url, dbname=name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")  # type: ignore[arg-type]
