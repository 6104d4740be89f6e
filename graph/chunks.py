"""Long lists (the conversation) stored as shared chunks instead of whole at every step.

LangGraph stores a channel's whole value at each step that changes it: appending one message to
a 200-turn conversation re-encodes and rewrites all of it (about 1 MB), and every load transfers
it again. Here a list of at least ``2 * CHUNK_ITEMS`` items is stored as a small *header* (the
digests of its full chunks of ``CHUNK_ITEMS`` items, and the items after the last full chunk)
plus each full chunk once, content-addressed, in a row of its own. A step then writes the header
and, every ``CHUNK_ITEMS`` items, one new chunk: constant work per step, whatever the length.

Nothing is trimmed: the value read back is the whole list, item for item. Which chunks are
already stored is known from the last load or write of the same thread in this process, by the
identity of the items (LangGraph's reducers replace messages, they never mutate them); an item
that is not the very object stored there is encoded again, so a stale guess costs time, never
data.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

CHUNK_ITEMS = 16
CHUNKED_TYPE_PREFIX = "chunked:"
"""Type of a header blob: this prefix and the serializer's type of the header value."""
CHUNKS_CHANNEL_PREFIX = "__chunks__:"
"""Chunk rows live beside the channel's blobs, under this prefix, with the digest as version."""

Dumps = Callable[[Any], tuple[str, bytes]]
ThreadChannel = tuple[str, str, str]
"""(thread id, checkpoint namespace, channel)."""


def is_chunked(value: Any) -> bool:
    """Only long lists are chunked: short ones are cheaper whole."""
    return isinstance(value, list) and len(value) >= 2 * CHUNK_ITEMS


def chunks_channel(channel: str) -> str:
    return CHUNKS_CHANNEL_PREFIX + channel


def digest_of(type_: str, blob: bytes) -> str:
    """A chunk's address: 128 bits of BLAKE2b over its encoded form."""
    return hashlib.blake2b(type_.encode() + b"\0" + blob, digest_size=16).hexdigest()


@dataclass(frozen=True)
class Chunk:
    """``CHUNK_ITEMS`` consecutive items, known to be stored under ``digest``."""

    digest: str
    items: tuple[Any, ...]
    size: int  # encoded bytes, for the cache's budget


@dataclass(frozen=True)
class NewChunk:
    """A chunk to insert: its row's type and blob."""

    chunk: Chunk
    type_: str
    blob: bytes


@dataclass(frozen=True)
class Split:
    """A list as stored: the header value, all its chunks, and the ones not stored yet."""

    header: dict[str, Any]
    chunks: tuple[Chunk, ...]
    new: tuple[NewChunk, ...]


def split(value: Sequence[Any], stored: Sequence[Chunk], dumps: Dumps) -> Split:
    """Cut ``value`` into full chunks and a tail, encoding only chunks not in ``stored``."""
    full = len(value) // CHUNK_ITEMS
    chunks: list[Chunk] = []
    new: list[NewChunk] = []
    for index in range(full):
        items = tuple(value[index * CHUNK_ITEMS : (index + 1) * CHUNK_ITEMS])
        known = stored[index] if index < len(stored) else None
        if known is not None and _same_objects(known.items, items):
            chunks.append(known)
            continue
        type_, blob = dumps(list(items))
        chunk = Chunk(digest_of(type_, blob), items, len(blob))
        chunks.append(chunk)
        new.append(NewChunk(chunk, type_, blob))
    header = {"chunks": [c.digest for c in chunks], "tail": list(value[full * CHUNK_ITEMS :])}
    return Split(header, tuple(chunks), tuple(new))


def joined(chunks: Sequence[Chunk], tail: Sequence[Any]) -> list[Any]:
    """The whole list again."""
    value: list[Any] = []
    for chunk in chunks:
        value.extend(chunk.items)
    value.extend(tail)
    return value


def _same_objects(left: Sequence[Any], right: Sequence[Any]) -> bool:
    return len(left) == len(right) and all(a is b for a, b in zip(left, right, strict=True))


class ChunkMemory:
    """This process's knowledge of stored chunks (thread-safe, bounded).

    ``stored`` maps a thread's channel to the chunks of its last loaded or written header, so
    the next write encodes only what changed; ``cached`` holds decoded chunks by digest, so a
    load fetches only chunks this process has not seen (a fresh replica fetches them once).
    """

    def __init__(self, max_threads: int = 512, max_bytes: int = 16_000_000) -> None:
        self.max_threads = max_threads
        self.max_bytes = max_bytes
        self._stored: OrderedDict[ThreadChannel, tuple[Chunk, ...]] = OrderedDict()
        self._cache: OrderedDict[str, Chunk] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()

    def stored(self, key: ThreadChannel) -> tuple[Chunk, ...]:
        with self._lock:
            return self._stored.get(key, ())

    def remember(self, key: ThreadChannel, chunks: tuple[Chunk, ...]) -> None:
        """Record what a header that is now in the database refers to (and cache its chunks)."""
        with self._lock:
            self._stored[key] = chunks
            self._stored.move_to_end(key)
            while len(self._stored) > self.max_threads:
                self._stored.popitem(last=False)
        for chunk in chunks:
            self.cache(chunk)

    def forget(self, thread_id: str) -> None:
        with self._lock:
            for key in [k for k in self._stored if k[0] == thread_id]:
                del self._stored[key]

    def cached(self, digest: str) -> Chunk | None:
        with self._lock:
            chunk = self._cache.get(digest)
            if chunk is not None:
                self._cache.move_to_end(digest)
            return chunk

    def cache(self, chunk: Chunk) -> None:
        with self._lock:
            if chunk.digest in self._cache:
                self._cache.move_to_end(chunk.digest)
                return
            self._cache[chunk.digest] = chunk
            self._cached_bytes += chunk.size
            while self._cached_bytes > self.max_bytes and len(self._cache) > 1:
                _, evicted = self._cache.popitem(last=False)
                self._cached_bytes -= evicted.size
