"""Slack's streaming methods: ``chat.startStream``, ``chat.appendStream``, ``chat.stopStream``.

A streamed message is an ordinary thread reply whose text grows while it is "streaming"
(the page shows it being written); stopping it ends it as an ordinary message. Slack's limits
are played: a stream is always a reply in a thread (``thread_ts``), outside a DM it names its
recipient (``recipient_user_id`` and ``recipient_team_id``), each call carries at most
``MARKDOWN_LIMIT`` characters, and a message no longer streaming refuses more text
(``message_not_in_streaming_state``). ``unavailable`` makes every streaming method answer as a
workspace without them does (``unknown_method``, ``not_allowed``, ``method_deprecated``), for
the bot's fallback tests.
"""

from __future__ import annotations

from collections.abc import Callable

from sandbox.blocks import fill_ids, validate_blocks
from sandbox.errors import ApiError
from sandbox.workspace import BOT_USER_ID, Json, Message, Workspace

MARKDOWN_LIMIT = 12_000
"""``markdown_text`` per call (Slack's documented limit)."""
METHODS = ("chat.startStream", "chat.appendStream", "chat.stopStream")


def _markdown(args: Json, required: bool) -> str:
    text = args.get("markdown_text")
    if text is None or text == "":
        if required:
            raise ApiError("invalid_arguments", detail="markdown_text is required")
        return ""
    if len(str(text)) > MARKDOWN_LIMIT:
        raise ApiError("msg_too_long")
    return str(text)


class StreamMethods:
    """The three methods over the workspace; ``handlers`` are merged into the Web API's."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.unavailable: str | None = None

    def handlers(self) -> dict[str, Callable[[Json], Json]]:
        return {
            "chat.startStream": self.start,
            "chat.appendStream": self.append,
            "chat.stopStream": self.stop,
        }

    def _check(self) -> None:
        if self.unavailable:
            raise ApiError(self.unavailable)

    def _streaming(self, args: Json) -> Message:
        channel = str(args.get("channel") or "")
        if not channel:
            raise ApiError("channel_not_found")
        msg = self.ws.find_message(self.ws.channel(channel).id, str(args.get("ts") or ""))
        if msg.user != BOT_USER_ID or not msg.streaming:
            raise ApiError("message_not_in_streaming_state")
        return msg

    def start(self, args: Json) -> Json:
        self._check()
        chan = self.ws.channel(str(args.get("channel") or ""))
        if BOT_USER_ID not in chan.members:
            raise ApiError("not_in_channel")
        thread_ts = str(args.get("thread_ts") or "")
        if not thread_ts:
            raise ApiError("invalid_arguments", detail="thread_ts is required")
        self.ws.find_message(chan.id, thread_ts)
        if not chan.is_im and not (args.get("recipient_user_id") and args.get("recipient_team_id")):
            raise ApiError("invalid_arguments", detail="recipient_user_id and recipient_team_id")
        text = _markdown(args, required=False)
        msg = self.ws.post(chan, BOT_USER_ID, text, thread_ts=thread_ts, streaming=True)
        return {"channel": chan.id, "ts": msg.ts}

    def append(self, args: Json) -> Json:
        self._check()
        msg = self._streaming(args)
        self.ws.append_text(msg, _markdown(args, required=True))
        return {"channel": msg.channel, "ts": msg.ts}

    def stop(self, args: Json) -> Json:
        self._check()
        msg = self._streaming(args)
        blocks = args.get("blocks")
        if blocks is not None:
            errors = validate_blocks(blocks)
            if errors:
                raise ApiError("invalid_blocks", errors=errors)
            blocks = fill_ids(blocks)
        self.ws.append_text(msg, _markdown(args, required=False), stop=True, blocks=blocks)
        return {"channel": msg.channel, "ts": msg.ts, "message": msg.to_dict()}
