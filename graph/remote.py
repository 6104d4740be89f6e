"""The agent hosted on LangGraph Server, behind the same seam (:class:`graph.seam.Agent`).

The bot keeps its own database (reviews, audit, events); the agent's state lives on the
server, one server thread per conversation: :func:`server_thread_id` (a UUID5 of ours, so every
replica and every restart finds the same one; created with ``if_exists="do_nothing"``).

Exactly once. The bot claims a decision in its own database before it calls :meth:`answer`
(the review lifecycle does not change); here the server's own per-thread protection is added:
a resume is made only while the thread is ``interrupted`` and the review's interrupt is still
pending, with ``multitask_strategy="reject"`` (a busy thread answers 409: :class:`AgentBusy`,
never a second run) and ``Command(resume={interrupt_id: value})`` (an answer cannot land on
another interrupt). Each run carries its decisions in its metadata (:data:`DECISIONS`: who
decided what, never the arguments), which is the server's record of what was applied: a stale
or repeated answer is told who decided, and a bot that died after the server took a decision in
finds the run again: joined (``runs.join``) while it runs, read back from the thread's state
once it has finished, never started twice.

A HITL-middleware interrupt asking several things at once is resumed once, with every answer:
each answer is kept on the server's store until the last one arrives (:meth:`answer`).

Outages: a server that does not answer raises :class:`AgentUnreachable` (the bot says so,
gives the decision back, and ``/readyz`` reports it: :meth:`RemoteAgent.reachable`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from langgraph_sdk import __version__ as sdk_version
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError
from langgraph_sdk.schema import Run, Thread

from graph.context import AgentContext
from graph.decisions import ReviewDecision
from graph.previews import Preview
from graph.protocols import Unanswerable
from graph.remote_reviews import Ask, asks_of, resume_value
from graph.remote_wire import (
    AFTER,
    CALLS,
    DECISIONS,
    MESSAGE,
    RECENT_RUNS,
    STORE_PREFIX,
    VIA,
    answer_from_store,
    calls_in,
    check_decision,
    decision_entry,
    human_message,
    is_uuid,
    messages_of,
    moment,
    outcome_of,
    past_decision,
    server_thread_id,
    stored_answer,
    translated,
)
from graph.seam import Agent, AgentBusy, AgentUnreachable
from graph.tools.mcp import McpStatus
from graph.types import PendingReview, Refused, RunOutcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteSettings:
    """Where the agent runs: ``AGENT_URL``, ``AGENT_ASSISTANT``, ``LANGGRAPH_API_KEY``."""

    url: str
    assistant: str | None = None
    """An assistant id or graph id; None: the first graph the server lists."""
    api_key: str | None = None
    """Sent as LangGraph Server expects it (``x-api-key``); None: no key is sent."""
    connect_seconds: float = 5.0
    run_seconds: float = 300.0
    """How long one request may take; a run is waited for with reconnects beyond that."""


class RemoteAgent:
    """:class:`graph.seam.Agent` over ``langgraph_sdk``; stateless, safe to share."""

    def __init__(self, client: LangGraphClient, assistant: str | None) -> None:
        self.client = client
        self._assistant = assistant
        self._resolved: str | None = None

    # -- what the bot reads at start-up ------------------------------------------------------

    @property
    def tool_names(self) -> Collection[str]:
        """Unknown: the server does not list a graph's tools (see :attr:`knows_tools`)."""
        return ()

    @property
    def tool_schemas(self) -> Mapping[str, Mapping[str, Any]]:
        """Unknown too: rules on arguments of a remote graph's tools are checked against no
        schema at start-up (their conditions still fail closed at run time)."""
        return {}

    @property
    def review_sources(self) -> Mapping[str, str]:
        """None known: the graph on the server decides which calls it interrupts for."""
        return {}

    knows_tools = False
    """The policy's start-up check of tool names is skipped (and said so): tool names come
    from the server's interrupts, so a policy entry naming no tool of the graph is simply
    never used."""

    @property
    def mcp_tools(self) -> Mapping[str, tuple[str, dict[str, Any]]]:
        return {}

    @property
    def tool_servers(self) -> Sequence[McpStatus]:
        return ()

    async def assistant(self) -> str:
        """The assistant runs are made with: the configured one (an assistant id, or a graph
        id, whose assistant is looked up), or the first graph the server lists. Looked up once,
        when first needed; :class:`RemoteConfigError` if the server has no such assistant."""
        if self._resolved is None:
            self._resolved = await self._look_up(self._assistant)
        return self._resolved

    async def _look_up(self, wanted: str | None) -> str:
        with translated("looking up the assistant"):
            if wanted is not None and is_uuid(wanted):
                try:
                    return str((await self.client.assistants.get(wanted))["assistant_id"])
                except NotFoundError:
                    found = []
            else:
                found = await self.client.assistants.search(graph_id=wanted, limit=1)
        if not found:
            named = f"no assistant or graph {wanted!r}" if wanted else "no graph"
            raise RemoteConfigError(f"the agent server hosts {named} (AGENT_ASSISTANT)")
        return str(found[0]["assistant_id"])

    async def reachable(self) -> str | None:
        """None if the server answers, else why not (for ``/readyz``)."""
        try:
            response = await self.client.http.client.get("/ok", timeout=2.0)
        except httpx.HTTPError as error:
            return type(error).__name__
        return None if response.status_code == 200 else f"HTTP {response.status_code}"

    # -- turns -------------------------------------------------------------------------------

    async def start_turn(
        self,
        thread_id: str,
        text: str,
        *,
        user: str | None = None,
        context: AgentContext | None = None,
        message_id: str | None = None,
    ) -> RunOutcome | Refused:
        """Add the user's message and run until the agent replies or waits for a review; a
        thread with reviews outstanding is refused, a busy one is :class:`AgentBusy`."""
        sid = server_thread_id(thread_id)
        with translated("starting a turn"):
            await self.client.threads.create(
                thread_id=sid, if_exists="do_nothing", metadata={"slack_thread": thread_id}
            )
            thread = await self.client.threads.get(sid)
        if thread["status"] == "busy":
            raise AgentBusy(f"the agent is busy in {thread_id}")
        pending = self._asks(thread_id, thread)
        if pending:
            return Refused(
                "reviews_pending",
                f"{len(pending)} review(s) in this thread need a decision first.",
                pending=[ask.review for ask in pending],
            )
        message = human_message(text, user, message_id)
        metadata = {MESSAGE: message_id} if message_id else {}
        return await self._run(thread_id, thread, {"input": {"messages": [message]}}, metadata)

    async def has_message(self, thread_id: str, message_id: str) -> bool:
        thread = await self._thread(thread_id)
        return thread is not None and any(
            m.get("id") == message_id for m in messages_of(thread.get("values"))
        )

    async def preview(
        self, tool_name: str, args: Mapping[str, Any], *, context: AgentContext | None = None
    ) -> Preview | None:
        """None: a graph on LangGraph Server offers no previews through the server's API (its
        tools run there, not here), so its cards show the arguments alone."""
        return None

    async def pending_reviews(self, thread_id: str) -> list[PendingReview]:
        thread = await self._thread(thread_id)
        return [] if thread is None else [ask.review for ask in self._asks(thread_id, thread)]

    # -- decisions ---------------------------------------------------------------------------

    async def check(
        self, thread_id: str, interrupt_id: str, decision: ReviewDecision
    ) -> Refused | None:
        thread = await self._thread(thread_id)
        if thread is None:
            return Refused("unknown_thread", f"There is no conversation {thread_id!r}.")
        ask = self._ask(thread_id, thread, interrupt_id)
        if ask is None:
            return Refused("not_pending", "This review is no longer waiting for a decision.")
        return check_decision(ask, decision)

    async def answer(
        self,
        thread_id: str,
        interrupt_id: str,
        decision: ReviewDecision,
        *,
        context: AgentContext | None = None,
    ) -> RunOutcome | Refused:
        """Apply one decision to one pending review, exactly once (see the module docstring).

        The review's interrupt may ask several things at once: then this answer is kept on the
        server's store, and the answer that completes the set resumes the run with all of
        them. An answer the server already has (a run's :data:`DECISIONS` names it) is not
        sent again: a run it started is joined while it runs; once it has finished this says
        so (``not_pending``, with who decided), so the caller reads back what followed."""
        thread = await self._thread(thread_id)
        if thread is None:
            return Refused("unknown_thread", f"There is no conversation {thread_id!r}.")
        ask = self._ask(thread_id, thread, interrupt_id) if thread["status"] != "busy" else None
        if ask is None:
            return await self._already_answered(thread_id, thread, interrupt_id, decision)
        refused = check_decision(ask, decision)
        if refused is not None:
            return refused
        decisions = await self._answers(thread_id, ask, decision)
        if decisions is None:  # its siblings are still waiting: nothing runs yet
            return RunOutcome(thread_id=thread_id)
        siblings = self._siblings(thread_id, thread, ask)
        before = messages_of(thread.get("values"))
        metadata = {
            VIA: interrupt_id,
            DECISIONS: {
                sibling.address: decision_entry(answer)
                for sibling, answer in zip(siblings, decisions, strict=True)
            },
            CALLS: [sibling.review.tool_call_id for sibling in siblings],
            AFTER: before[-1].get("id") if before else None,
        }
        resume = resume_value(ask, decisions)
        if isinstance(resume, Unanswerable):
            return Refused(
                "invalid_decision", f"The agent cannot take this answer: {resume.message}."
            )
        command = {"command": {"resume": {ask.interrupt_id: resume}}}
        try:
            outcome = await self._run(thread_id, thread, command, metadata)
        except AgentBusy:  # a sibling's answer started the same resume first
            return await self._already_answered(thread_id, None, interrupt_id, decision)
        await self._forget_answers(thread_id, ask)
        return outcome

    async def resume_interrupted(
        self, thread_id: str, *, context: AgentContext | None = None
    ) -> RunOutcome | None:
        """Join a run the server is still running (a bot that started it died meanwhile) and
        report what it did; None if the thread is at rest (the server finishes its runs
        itself: nothing here ever starts one)."""
        thread = await self._thread(thread_id)
        if thread is None or thread["status"] != "busy":
            return None
        runs = await self._runs(thread_id, ("running", "pending"))
        if not runs:
            return None
        for run in runs:
            await self._join(thread_id, run)
        return await self._recap_run(thread_id, runs[-1])

    async def recap(
        self, thread_id: str, tool_call_id: str | None = None, *, after_message: str | None = None
    ) -> RunOutcome:
        """What followed a tool call (or a message), read back from the server's state."""
        thread = await self._thread(thread_id)
        if thread is None:
            return RunOutcome(thread_id=thread_id)
        messages = messages_of(thread.get("values"))
        if tool_call_id and not calls_in(messages, tool_call_id):
            after_message = await self._after_call(thread_id, tool_call_id) or after_message
        start = next(
            (
                index
                for index, message in enumerate(messages)
                if (after_message is not None and message.get("id") == after_message)
                or (
                    message.get("type") == "ai"
                    and any(
                        isinstance(call, Mapping) and call.get("id") == tool_call_id
                        for call in message.get("tool_calls") or []
                    )
                )
            ),
            len(messages),
        )
        pending = [ask.review for ask in self._asks(thread_id, thread)]
        return outcome_of(thread_id, messages[start + 1 :], pending)

    # -- retention ---------------------------------------------------------------------------

    async def last_activity(self, thread_ids: Sequence[str]) -> Mapping[str, datetime]:
        activity: dict[str, datetime] = {}
        for thread_id in thread_ids:
            thread = await self._thread(thread_id)
            if thread is None:
                continue
            if thread["status"] in ("interrupted", "busy"):
                activity[thread_id] = datetime.now(UTC)
            else:
                activity[thread_id] = moment(thread["updated_at"])
        return activity

    async def delete_threads(
        self, thread_ids: Sequence[str], *, idle_before: datetime
    ) -> list[str]:
        """Delete each idle thread on the server; a busy, waiting or recent one is kept."""
        gone: list[str] = []
        activity = await self.last_activity(thread_ids)
        for thread_id in thread_ids:
            seen = activity.get(thread_id)
            if seen is not None and seen >= idle_before:
                continue
            with translated("deleting a thread"), contextlib.suppress(NotFoundError):
                await self.client.threads.delete(server_thread_id(thread_id))
            gone.append(thread_id)
        return gone

    # -- the server --------------------------------------------------------------------------

    async def _thread(self, thread_id: str) -> Thread | None:
        with translated("reading a thread"):
            try:
                return await self.client.threads.get(server_thread_id(thread_id))
            except NotFoundError:
                return None

    def _asks(self, thread_id: str, thread: Thread) -> list[Ask]:
        if thread["status"] == "busy":
            return []
        interrupts = [item for items in (thread.get("interrupts") or {}).values() for item in items]
        return asks_of(thread_id, interrupts, messages_of(thread.get("values")))

    def _ask(self, thread_id: str, thread: Thread, address: str) -> Ask | None:
        if thread["status"] != "interrupted":
            return None
        return next((a for a in self._asks(thread_id, thread) if a.address == address), None)

    def _siblings(self, thread_id: str, thread: Thread, ask: Ask) -> list[Ask]:
        siblings = [a for a in self._asks(thread_id, thread) if a.interrupt_id == ask.interrupt_id]
        return sorted(siblings, key=lambda a: a.index)

    async def _run(
        self,
        thread_id: str,
        thread: Thread,
        payload: Mapping[str, Any],
        metadata: Mapping[str, Any],
    ) -> RunOutcome:
        """One run, refused if the thread is busy; waited for, then read back from the state.

        A background run (``runs.create``, then ``runs.join``): a bot that dies while it waits
        does not cancel it, and whoever recovers the decision joins it."""
        sid = server_thread_id(thread_id)
        seen = {m.get("id") for m in messages_of(thread.get("values"))}
        assistant = await self.assistant()
        with translated("running the agent"):
            run = await self.client.runs.create(
                sid,
                assistant,
                input=payload.get("input"),
                command=payload.get("command"),
                metadata={"slack_thread": thread_id, **metadata},
                multitask_strategy="reject",
                if_not_exists="reject",
            )
        await self._join(thread_id, run)
        after = await self._thread(thread_id)
        if after is None:
            return RunOutcome(thread_id=thread_id)
        new = [m for m in messages_of(after.get("values")) if m.get("id") not in seen]
        return outcome_of(thread_id, new, [ask.review for ask in self._asks(thread_id, after)])

    async def _join(self, thread_id: str, run: Run) -> None:
        with translated("waiting for the agent"):
            await self.client.runs.join(server_thread_id(thread_id), run["run_id"])
            done = await self.client.runs.get(server_thread_id(thread_id), run["run_id"])
        if done["status"] in ("error", "timeout"):
            raise RemoteRunFailed(f"the agent's run {run['run_id']} ended with {done['status']}")

    async def _runs(self, thread_id: str, statuses: Sequence[str] = ()) -> list[Run]:
        with translated("listing runs"):
            runs = await self.client.runs.list(server_thread_id(thread_id), limit=RECENT_RUNS)
        runs = [run for run in runs if not statuses or run["status"] in statuses]
        return sorted(runs, key=lambda run: str(run["created_at"]))

    async def _already_answered(
        self, thread_id: str, thread: Thread | None, address: str, decision: ReviewDecision
    ) -> RunOutcome | Refused:
        """A review that is not pending (or a thread that is busy): find the run that took
        its decision. Started by this review's answer and still running: joined, and what it
        did is reported. Started by a sibling's answer with this very decision in it: nothing
        to report here (that answer's caller reports it). Finished, or with another decision
        in it (e.g. one given back after an outage, then applied by a sibling's answer):
        ``not_pending`` with who decided what, so the caller records what really ran. No such
        run: busy, or not pending."""
        for run in reversed(await self._runs(thread_id)):
            previous = past_decision(address, run)
            if previous is None:
                continue
            metadata = run.get("metadata") or {}
            if metadata.get(VIA) != address:
                if metadata[DECISIONS][address] == decision_entry(decision):
                    return RunOutcome(thread_id=thread_id)
            elif run["status"] in ("running", "pending"):
                await self._join(thread_id, run)
                return await self._recap_run(thread_id, run)
            return Refused(
                "not_pending",
                "This review is no longer waiting for a decision.",
                previous=previous,
            )
        thread = thread or await self._thread(thread_id)
        if thread is not None and thread["status"] == "busy":
            raise AgentBusy(f"the agent is busy in {thread_id}")
        return Refused("not_pending", "This review is no longer waiting for a decision.")

    async def _recap_run(self, thread_id: str, run: Run) -> RunOutcome:
        """What a run nobody waited for did, read back from the thread: what follows the
        message that started it (a turn) or the last one before it (a resume)."""
        metadata = run.get("metadata") or {}
        after = metadata.get(MESSAGE) or metadata.get(AFTER)
        if isinstance(after, str):
            return await self.recap(thread_id, after_message=after)
        return await self.recap(thread_id)

    async def _after_call(self, thread_id: str, tool_call_id: str) -> str | None:
        """The message a resume answering this call followed, from the run's metadata (for a
        review whose call is not among the model's, e.g. an interrupt of unknown shape)."""
        for run in reversed(await self._runs(thread_id)):
            metadata = run.get("metadata") or {}
            calls, after = metadata.get(CALLS), metadata.get(AFTER)
            if isinstance(calls, list) and tool_call_id in calls and isinstance(after, str):
                return after
        return None

    async def _answers(
        self, thread_id: str, ask: Ask, decision: ReviewDecision
    ) -> list[ReviewDecision] | None:
        """Every answer of ``ask``'s interrupt, in order, once all are in; None before.

        Each answer is written before the set is read, so the last one written always sees
        them all (several may: the server then lets one resume, see :meth:`answer`)."""
        if ask.siblings == 1:
            return [decision]
        namespace = self._namespace(thread_id, ask)
        with translated("keeping an answer"):
            await self.client.store.put_item(namespace, str(ask.index), stored_answer(decision))
            found = await self.client.store.search_items(namespace, limit=ask.siblings + 1)
        answers: dict[int, ReviewDecision] = {}
        for item in found["items"]:
            answer = answer_from_store(item["value"])
            if answer is not None and str(item["key"]).isdigit():
                answers[int(item["key"])] = answer
        if set(answers) != set(range(ask.siblings)):
            return None
        return [answers[index] for index in range(ask.siblings)]

    async def _forget_answers(self, thread_id: str, ask: Ask) -> None:
        if ask.siblings == 1:
            return
        namespace = self._namespace(thread_id, ask)
        with contextlib.suppress(Exception):  # left-overs are harmless: keyed by interrupt
            for index in range(ask.siblings):
                await self.client.store.delete_item(namespace, str(index))

    def _namespace(self, thread_id: str, ask: Ask) -> list[str]:
        return [STORE_PREFIX, server_thread_id(thread_id).replace("-", ""), ask.interrupt_id]


class RemoteRunFailed(RuntimeError):
    """The server ran the graph and the run failed (its log says why)."""


def remote_client(settings: RemoteSettings) -> LangGraphClient:
    """The SDK's client, on a transport that tries a refused connection twice, not six times
    (``get_client``'s default): an outage is said to people in seconds, and the bot's sweeper
    retries anyway. The key goes in ``x-api-key``, as LangGraph Server reads it; it is never
    taken from the environment behind the operator's back (``get_client`` would read
    ``LANGSMITH_API_KEY``)."""
    headers = {"User-Agent": f"slack-approval-bot langgraph-sdk-py/{sdk_version}"}
    if settings.api_key:
        headers["x-api-key"] = settings.api_key
    return LangGraphClient(
        httpx.AsyncClient(
            base_url=settings.url,
            transport=httpx.AsyncHTTPTransport(retries=1),
            timeout=httpx.Timeout(settings.run_seconds, connect=settings.connect_seconds),
            headers=headers,
        )
    )


@contextlib.asynccontextmanager
async def open_remote_agent(settings: RemoteSettings) -> AsyncIterator[RemoteAgent]:
    """A client of the server for the bot's lifetime. The assistant is looked up now if the
    server answers (a configured one that does not exist stops the start); an unreachable
    server does not stop the bot, which says so in ``/readyz`` and to people."""
    agent = RemoteAgent(remote_client(settings), settings.assistant)
    try:
        await _check_assistant(agent, settings)
        yield agent
    finally:
        await agent.client.http.client.aclose()


async def _check_assistant(agent: RemoteAgent, settings: RemoteSettings) -> None:
    try:
        log.info("agent server %s: assistant %s", settings.url, await agent.assistant())
    except AgentUnreachable as error:
        log.warning("agent server %s unreachable at start-up: %s", settings.url, error)


class RemoteConfigError(ValueError):
    """A remote agent setting that cannot work."""


def _implements_the_seam(agent: RemoteAgent) -> Agent:
    return agent  # mypy checks here that RemoteAgent is an Agent
