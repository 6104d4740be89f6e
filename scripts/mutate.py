"""Mutation testing of the decision path (``./dev mutate``), with mutmut 3.

Each group mutates some modules and runs the tests that cover them, in a scratch copy of the
tracked files (``.mutants/<group>/``), so the work tree is never touched and each group's test
selection stays small. mutmut runs, per mutant, only the selected tests that reach the mutated
function. Prints, per module, killed / timed out / survived / untested and the surviving
mutants' names; ``mutmut show NAME`` in the group's copy shows one. docs/mutation.md holds the
last result and why each survivor is equivalent or which test now kills it.

    python scripts/mutate.py            # the unit-test groups: pure, rules, review (~20 min)
    python scripts/mutate.py rules      # one group
    python scripts/mutate.py agent bot  # the slow groups; `--list` names them
    python scripts/mutate.py bot --only "bot.review.clicks*"  # some of a group's mutants

The database-backed group (``agent``) gets one embedded PostgreSQL for the whole run, passed
to every mutant's tests as ``TEST_DATABASE_URL``: otherwise each mutant's pytest session would
start (and stop) its own server.
"""

from __future__ import annotations

import argparse
import collections
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = ROOT / ".mutants"
ALSO_COPY = ["sandbox", "bench", "scripts", "deploy", "docs", "README.md", "manifest.yml"]


MCP_TABLE_TESTS = tuple(
    f"tests/test_mcp_tools.py::{name}"
    for name in (
        "test_server_tables_read_values_from_the_environment_only",
        "test_bad_server_tables_are_refused_naming_the_line",
        "test_a_server_name_must_not_hold_a_dot_or_underscore",
        "test_a_pattern_must_name_a_configured_server",
        "test_destructive_quorum_fills_only_what_the_file_leaves_open",
        "test_a_table_for_a_tool_of_a_server_that_is_down_does_not_stop_the_start",
    )
)
"""The policy file's MCP server tables, tested without starting a server."""


POLICY_SETTING_TESTS = (
    "tests/test_routing.py::test_routing_and_escalation_settings_are_read_and_checked",
    "tests/test_grants.py::test_the_policy_sets_grant_limits_per_tool_and_refuses_bad_ones",
)
"""The policy file's routing, escalation and grant settings, read without Slack."""


GRANT_RULE_TESTS = tuple(
    f"tests/test_grants.py::{name}"
    for name in (
        "test_a_grant_matches_on_canonical_json_of_the_constrained_arguments_only",
        "test_a_redacted_argument_is_kept_equal_by_its_digest_never_its_value",
        "test_a_grant_never_allows_more_than_its_creators_could_approve",
        "test_combined_terms_are_what_every_creator_agreed_to",
        "test_the_card_offers_the_grant_button_only_where_the_policy_allows",
        "test_the_grant_modal_masks_redacted_values_and_reads_back_within_the_policy",
        "test_many_arguments_use_a_multi_select_and_the_rest_always_stay_equal",
        "test_home_blocks_are_valid_and_masked",
        "test_the_longest_home_with_the_longest_list_of_grants_is_one_valid_view",
        "test_canonical_json_is_one_spelling_keys_sorted_no_spaces_unicode_kept",
        "test_plain_constraints_are_stored_and_shown_as_their_values",
        "test_each_refusal_of_a_grant_says_which_rule_stops_it",
    )
)
"""The grants' pure rules (match, refusal, combined terms, what is shown), no database."""

DIGEST_UNIT_TESTS = tuple(
    f"tests/test_digest_binding.py::{name}"
    for name in (
        "test_the_digest_is_rfc_8785_over_the_arguments",
        "test_what_rfc_8785_cannot_hold_exactly_is_digested_under_another_tag",
        "test_the_wire_carries_the_digest_and_stays_valid_without_one",
        "test_a_decision_runs_only_the_arguments_its_digest_names",
        "test_run_tool_refuses_a_call_whose_arguments_differ_from_the_approved_digest",
    )
)
"""The digest binding without a database: the digest, ``check_bound``, and ``run_tool``."""

ROUTING_PURE_TESTS = tuple(
    f"tests/test_routing.py::{name}"
    for name in (
        "test_a_routed_card_stays_within_slacks_limits",
        "test_a_routed_card_says_where_it_was_asked_for",
    )
)
"""Routing's pure builders; the router itself needs Slack (the sandbox) and is in no group."""


BOT_TESTS = (
    "tests/test_permissions.py",
    "tests/test_request_checks.py",
    "tests/test_bot_store.py",
    "tests/test_consent_expiry.py::test_no_statement_decides_an_expired_review",
    "tests/test_bot_clicks.py",
    "tests/test_bot_flow.py",
    "tests/test_bot_policy.py",
    "tests/test_hostile_requests.py",
    "tests/test_ack_first.py",
    "tests/test_consent_expiry.py",
    "tests/test_bot_digest.py",
    "tests/test_guarantees.py::test_the_claim_alone_refuses_a_second_decision",
    "tests/test_bot_recovery.py::test_a_slow_decision_is_not_replayed_while_its_process_lives",
)
"""The decision path through the bot, in process: unit tests first (who may decide against the
sandbox's Web API, the signature and body checks, the store's statements on real PostgreSQL),
then the bot's HTTP app behind the sandbox. Not the two-replica tests of ``test_guarantees.py``
(seconds of set-up each). The order matters: ``scripts/mutate_order.py`` runs a mutant's tests
in this order, so one a unit test kills stops there."""


@dataclass(frozen=True)
class Group:
    modules: tuple[str, ...]
    tests: tuple[str, ...]
    why: str
    database: bool = False
    """Start one embedded PostgreSQL for the whole run (``TEST_DATABASE_URL``): without it
    every mutant's pytest session would start its own server."""


GROUPS: dict[str, Group] = {
    "pure": Group(
        (
            "bot/review/rules.py",
            "bot/review/states.py",
            "bot/policy.py",
            "graph/decisions.py",
        ),
        (
            "tests/test_review_rules.py",
            "tests/test_policy.py",
            "tests/test_decision_edges.py",
            "tests/test_policy_rules.py",
            *MCP_TABLE_TESTS,
            *POLICY_SETTING_TESTS,
        ),
        "who may decide, the review table, policy, the decision vocabulary: unit tests (and "
        "one test_policy.py test that runs the agent on PostgreSQL)",
        database=True,
    ),
    "rules": Group(
        (
            "bot/policy_rules.py",
            "bot/cel_check.py",
            "bot/grants.py",
            "bot/routing.py",
            "graph/protocols.py",
        ),
        (
            "tests/test_policy_rules.py",
            "tests/test_cel_check.py",
            "tests/test_protocols.py",
            *GRANT_RULE_TESTS,
            *ROUTING_PURE_TESTS,
        ),
        "rules on arguments (CEL), standing approvals' rules, routing's card blocks, the "
        "interrupt protocols: unit tests only (the grant store and the router are in no group)",
    ),
    "review": Group(
        ("graph/review.py",),
        (
            "tests/test_edit_validation.py",
            *DIGEST_UNIT_TESTS,
            "tests/test_redaction.py::test_a_shown_request_masks_agent_inbox_s_copy_of_the_arguments_too",
        ),
        "the reviewer's payload, a decision's shape, edit validation, the digest binding "
        "(graph/review.py is pure): unit tests only",
    ),
    "agent": Group(
        ("graph/locks.py", "graph/service.py"),
        (
            "tests/test_agent_service.py",
            "tests/test_graph_streaming.py",
            "tests/test_graph_refusals.py",
            "tests/test_graph_leases.py",
            "tests/test_graph_crash.py",
            "tests/test_graph_offline.py",
            "tests/test_graph_parallel.py",
            "tests/test_graph_seed.py",
            "tests/test_digest_binding.py",
            "tests/test_guarantees.py::test_the_lease_alone_refuses_a_second_run",
            "tests/test_graph_processes.py::"
            "test_a_process_killed_after_the_tool_ran_leaves_that_step_on_disk",
        ),
        "the agent service's verdict and answer, what a reply listener is told, recovery, "
        "leases: real PostgreSQL, in process but for one kill test (one server for the whole "
        "run; slow)",
        database=True,
    ),
    "bot": Group(
        (
            "bot/review/clicks.py",
            "bot/permissions.py",
            "bot/store.py",
            "bot/transport/http.py",
            "bot/transport/checks.py",
        ),
        BOT_TESTS,
        "who may decide, clicks, the store's claims and votes, the signature check and body "
        "cap: the bot in process behind the sandbox, real PostgreSQL (one server for the run)",
        database=True,
    ),
}


DEFAULT = ("pure", "rules", "review")
"""The groups ``./dev mutate`` runs without arguments: unit tests only, minutes each."""


def scratch_copy(name: str, group: Group) -> Path:
    """The files git tracks or would track, copied, with mutmut's configuration for this group."""
    target = SCRATCH / name
    shutil.rmtree(target, ignore_errors=True)
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for path in filter(None, tracked):
        source = ROOT / path
        if source.is_file():
            (target / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / path)
    config = "\n".join(
        [
            "",
            "[tool.mutmut]",
            'source_paths = ["bot", "graph"]',
            f"only_mutate = {list(group.modules)!r}",
            f"also_copy = {ALSO_COPY!r}",
            f"pytest_add_cli_args_test_selection = {list(group.tests)!r}",
            'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-p", "scripts.mutate_order"]',
            "",
        ]
    ).replace("'", '"')
    with (target / "pyproject.toml").open("a") as pyproject:
        pyproject.write(config)
    return target


def module_of(mutant: str) -> str:
    return re.split(r"\.x[_ǁ]", mutant, maxsplit=1)[0]


def chosen(mutant: str, only: tuple[str, ...]) -> bool:
    """Whether ``--only`` keeps this mutant: a name or ``fnmatch`` pattern, as ``mutmut run``
    reads them (``*`` spans dots); no pattern keeps all."""
    return not only or any(mutant == p or fnmatch.fnmatch(mutant, p) for p in only)


def report(name: str, results: str, only: tuple[str, ...] = ()) -> int:
    """Print the group's table, survivors and timeouts; the number of survivors.

    A *timeout* (the mutant's tests ran past mutmut's time limit, e.g. a wait loop that never
    ends) is a mutant the tests caught: they did not pass. It is counted apart from *killed*
    and listed, since on a loaded machine a slow survivor could time out too: re-run those
    (``mutmut run NAME`` in the group's copy) before trusting them. *Suspicious* counts as a
    survivor. With ``only``, the mutants left out are not counted (mutmut lists them as not
    checked)."""
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    survivors: list[str] = []
    timeouts: list[str] = []
    for line in results.splitlines():
        mutant, _, status = line.strip().rpartition(": ")
        if not mutant or not chosen(mutant, only):
            continue
        counts[module_of(mutant)][status] += 1
        if status in ("survived", "suspicious"):
            survivors.append(mutant)
        elif status == "timeout":
            timeouts.append(mutant)
    print(
        f"\n## {name}\n\n| module | killed | timeout | survived | no tests | score |\n"
        "|---|---|---|---|---|---|"
    )
    for module, seen in sorted(counts.items()):
        caught = seen["killed"] + seen["timeout"]
        tried = caught + seen["survived"] + seen["suspicious"]
        score = f"{100 * caught / tried:.0f}%" if tried else "n/a"
        row = [module, seen["killed"], seen["timeout"], tried - caught, seen["no tests"], score]
        print("|", " | ".join(map(str, row)), "|")
    print("\nsurvivors:", *survivors, sep="\n  ")
    print("\ntimeouts (caught; re-run to be sure):", *timeouts, sep="\n  ")
    return len(survivors)


def run(name: str, children: int, only: tuple[str, ...] = ()) -> int:
    group = GROUPS[name]
    copy = scratch_copy(name, group)
    env = {**os.environ, "PYTHONPATH": str(copy)}
    if not group.database:
        return mutate(name, copy, env, children, only)
    sys.path.insert(0, str(ROOT))
    from graph.db import start_embedded_postgres, stop_embedded_postgres

    with tempfile.TemporaryDirectory(prefix=f"mutate-{name}-pg-") as data_dir:
        Path(data_dir).chmod(0o755)  # the server may run as another user (as the tests' own)
        env["TEST_DATABASE_URL"] = start_embedded_postgres(Path(data_dir))
        try:
            return mutate(name, copy, env, children, only)
        finally:
            stop_embedded_postgres(Path(data_dir))


def mutate(name: str, copy: Path, env: dict[str, str], children: int, only: tuple[str, ...]) -> int:
    """Run mutmut in ``copy`` (only the mutants ``only`` names, if any) and print its results;
    the number of survivors."""
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    command = [mutmut, "run", "--max-children", str(children), *only]
    subprocess.run(command, cwd=copy, env=env, check=True)
    results = subprocess.run(
        [mutmut, "results", "--all", "true"],
        cwd=copy,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return report(name, results, only)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", default=list(DEFAULT), help=f"of {', '.join(GROUPS)}")
    parser.add_argument("--list", action="store_true", help="name the groups and stop")
    parser.add_argument("--children", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="run only the mutants this names (repeatable; mutmut's fnmatch patterns, e.g. "
        '"bot.review.clicks*"); the table counts only those',
    )
    args = parser.parse_args()
    if args.list:
        for name, group in GROUPS.items():
            print(f"{name}: {group.why}\n  {', '.join(group.modules)}")
        return
    unknown = set(args.groups) - set(GROUPS)
    if unknown:
        parser.error(f"no such group: {', '.join(sorted(unknown))}")
    only = tuple(args.only)
    survived = sum(run(name, args.children, only) for name in args.groups)
    print(f"\n{survived} surviving mutants: explain each in docs/mutation.md or kill it.")


if __name__ == "__main__":
    main()
