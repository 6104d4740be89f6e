"""Block Kit validation with Slack's limits and Slack's error wording.

The point of the sandbox is to fail where Slack would fail: a bot that passes
here must not get `invalid_blocks` in production. Errors carry a JSON pointer
like Slack's (`must be less than 3001 characters [json-pointer:/blocks/0/text/text]`).
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Callable
from typing import Any

Errors = list[str]
Check = Callable[[Any, str, Errors], None]

MESSAGE_BLOCK_LIMIT = 50
VIEW_BLOCK_LIMIT = 100
BUTTON_STYLES = {"primary", "danger"}
TEXT_TYPES = {"plain_text", "mrkdwn"}


def _err(errors: Errors, message: str, pointer: str) -> None:
    errors.append(f"{message} [json-pointer:{pointer}]")


def _max_len(value: Any, limit: int, pointer: str, errors: Errors) -> None:
    if isinstance(value, str) and len(value) > limit:
        _err(errors, f"must be less than {limit + 1} characters", pointer)


def _text(obj: Any, ptr: str, errors: Errors, limit: int, plain_only: bool = False) -> None:
    """A composition text object: right type, non-empty, within `limit`."""
    if not isinstance(obj, dict) or obj.get("type") not in TEXT_TYPES:
        _err(errors, "must provide an object with a valid text type", ptr)
        return
    if plain_only and obj["type"] != "plain_text":
        _err(errors, "must be a valid enum value (plain_text)", f"{ptr}/type")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        _err(errors, "must be more than 0 characters", f"{ptr}/text")
        return
    _max_len(text, limit, f"{ptr}/text", errors)


def _ids(obj: dict[str, Any], ptr: str, errors: Errors) -> None:
    for key in ("action_id", "block_id"):
        _max_len(obj.get(key), 255, f"{ptr}/{key}", errors)


def _options(options: Any, ptr: str, errors: Errors, limit: int) -> None:
    if not isinstance(options, list) or not options:
        _err(errors, "must provide at least 1 option", ptr)
        return
    if len(options) > limit:
        _err(errors, f"must provide no more than {limit} items", ptr)
    for i, opt in enumerate(options):
        if not isinstance(opt, dict):
            _err(errors, "must provide an object", f"{ptr}/{i}")
            continue
        _text(opt.get("text"), f"{ptr}/{i}/text", errors, 75)
        _max_len(opt.get("value"), 150, f"{ptr}/{i}/value", errors)


def _button(el: dict[str, Any], ptr: str, errors: Errors) -> None:
    _text(el.get("text"), f"{ptr}/text", errors, 75, plain_only=True)
    _max_len(el.get("value"), 2000, f"{ptr}/value", errors)
    _max_len(el.get("url"), 3000, f"{ptr}/url", errors)
    if "style" in el and el["style"] not in BUTTON_STYLES:
        _err(errors, "must be a valid enum value", f"{ptr}/style")


def _select(el: dict[str, Any], ptr: str, errors: Errors) -> None:
    if "placeholder" in el:
        _text(el["placeholder"], f"{ptr}/placeholder", errors, 150, plain_only=True)
    if el.get("type") in {"static_select", "multi_static_select"} and "option_groups" not in el:
        _options(el.get("options"), f"{ptr}/options", errors, 100)


def _choices(el: dict[str, Any], ptr: str, errors: Errors) -> None:
    _options(el.get("options"), f"{ptr}/options", errors, 10)


def _overflow(el: dict[str, Any], ptr: str, errors: Errors) -> None:
    _options(el.get("options"), f"{ptr}/options", errors, 5)


def _text_input(el: dict[str, Any], ptr: str, errors: Errors) -> None:
    if "placeholder" in el:
        _text(el["placeholder"], f"{ptr}/placeholder", errors, 150, plain_only=True)
    _max_len(el.get("initial_value"), 3000, f"{ptr}/initial_value", errors)
    for key in ("min_length", "max_length"):
        if key in el and not (isinstance(el[key], int) and 0 <= el[key] <= 3000):
            _err(errors, "must be an integer between 0 and 3000", f"{ptr}/{key}")


def _number_input(el: dict[str, Any], ptr: str, errors: Errors) -> None:
    if not isinstance(el.get("is_decimal_allowed"), bool):
        _err(errors, "must provide a boolean", f"{ptr}/is_decimal_allowed")


def _image_el(el: dict[str, Any], ptr: str, errors: Errors) -> None:
    if not el.get("image_url") and not el.get("slack_file"):
        _err(errors, "must provide image_url or slack_file", ptr)
    if not el.get("alt_text"):
        _err(errors, "must be more than 0 characters", f"{ptr}/alt_text")
    _max_len(el.get("image_url"), 3000, f"{ptr}/image_url", errors)
    _max_len(el.get("alt_text"), 2000, f"{ptr}/alt_text", errors)


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ID = re.compile(r"[A-Z0-9]+")
# picker type -> (its initial-value key, whether that is a list of ids)
_PICKER_INITIAL = {
    "users_select": ("initial_user", False),
    "multi_users_select": ("initial_users", True),
    "conversations_select": ("initial_conversation", False),
    "multi_conversations_select": ("initial_conversations", True),
    "channels_select": ("initial_channel", False),
    "multi_channels_select": ("initial_channels", True),
}


def _picker(el: dict[str, Any], ptr: str, errors: Errors) -> None:
    """A people or channel picker: its initial value(s) are ids, ``max_selected_items`` >= 1."""
    _select(el, ptr, errors)
    key, many = _PICKER_INITIAL[str(el.get("type"))]
    if key in el:
        initial = el[key]
        items = initial if many and isinstance(initial, list) else [initial]
        if (many and not isinstance(initial, list)) or not all(
            isinstance(item, str) and _ID.fullmatch(item) for item in items
        ):
            _err(errors, "must be a valid id" + ("s" if many else ""), f"{ptr}/{key}")
    if "max_selected_items" in el and not (
        isinstance(el["max_selected_items"], int) and el["max_selected_items"] >= 1
    ):
        _err(errors, "must be at least 1", f"{ptr}/max_selected_items")


def _datepicker(el: dict[str, Any], ptr: str, errors: Errors) -> None:
    initial = el.get("initial_date")
    if initial is not None and not (isinstance(initial, str) and _DATE.fullmatch(initial)):
        _err(errors, "must match the format YYYY-MM-DD", f"{ptr}/initial_date")


def _datetimepicker(el: dict[str, Any], ptr: str, errors: Errors) -> None:
    initial = el.get("initial_date_time")
    if initial is not None and (isinstance(initial, bool) or not isinstance(initial, int)):
        _err(errors, "must be an integer (Unix seconds)", f"{ptr}/initial_date_time")


def _lenient(el: dict[str, Any], ptr: str, errors: Errors) -> None:
    """Element types we accept with only the generic id checks."""


ELEMENTS: dict[str, Check] = {
    "button": _button,
    "static_select": _select,
    "multi_static_select": _select,
    "external_select": _select,
    "multi_external_select": _select,
    "users_select": _picker,
    "multi_users_select": _picker,
    "conversations_select": _picker,
    "multi_conversations_select": _picker,
    "channels_select": _picker,
    "multi_channels_select": _picker,
    "checkboxes": _choices,
    "radio_buttons": _choices,
    "overflow": _overflow,
    "plain_text_input": _text_input,
    "email_text_input": _text_input,
    "url_text_input": _text_input,
    "number_input": _number_input,
    "rich_text_input": _lenient,
    "datepicker": _datepicker,
    "timepicker": _lenient,
    "datetimepicker": _datetimepicker,
    "file_input": _lenient,
    "workflow_button": _lenient,
    "image": _image_el,
}
INPUT_ELEMENTS = set(ELEMENTS) - {"button", "overflow", "image", "workflow_button"}


def _element(el: Any, ptr: str, errors: Errors, allowed: set[str] | None = None) -> None:
    """Any block element, dispatching on its type."""
    if not isinstance(el, dict):
        _err(errors, "must provide an object", ptr)
        return
    kind = el.get("type")
    check = ELEMENTS.get(kind) if isinstance(kind, str) else None
    if check is None or (allowed is not None and kind not in allowed):
        _err(errors, "must provide an object with a valid element type", ptr)
        return
    _ids(el, ptr, errors)
    check(el, ptr, errors)


def _elements(block: dict[str, Any], ptr: str, errors: Errors, limit: int) -> list[Any]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        _err(errors, "must provide at least 1 items", f"{ptr}/elements")
        return []
    if len(elements) > limit:
        _err(errors, f"must provide no more than {limit} items", f"{ptr}/elements")
    return elements


def _section(block: dict[str, Any], ptr: str, errors: Errors) -> None:
    if "text" not in block and "fields" not in block:
        _err(errors, "must provide at least one of text or fields", ptr)
    if "text" in block:
        _text(block["text"], f"{ptr}/text", errors, 3000)
    fields = block.get("fields")
    if fields is not None:
        if not isinstance(fields, list) or len(fields) > 10:
            _err(errors, "must provide no more than 10 items", f"{ptr}/fields")
        else:
            for i, fld in enumerate(fields):
                _text(fld, f"{ptr}/fields/{i}", errors, 2000)
    if "accessory" in block:
        _element(block["accessory"], f"{ptr}/accessory", errors)


def _header(block: dict[str, Any], ptr: str, errors: Errors) -> None:
    _text(block.get("text"), f"{ptr}/text", errors, 150, plain_only=True)


def _context(block: dict[str, Any], ptr: str, errors: Errors) -> None:
    for i, el in enumerate(_elements(block, ptr, errors, 10)):
        sub = f"{ptr}/elements/{i}"
        if isinstance(el, dict) and el.get("type") == "image":
            _image_el(el, sub, errors)
        else:
            _text(el, sub, errors, 3000)


def _actions(block: dict[str, Any], ptr: str, errors: Errors) -> None:
    for i, el in enumerate(_elements(block, ptr, errors, 25)):
        _element(el, f"{ptr}/elements/{i}", errors)


def _image_block(block: dict[str, Any], ptr: str, errors: Errors) -> None:
    _image_el(block, ptr, errors)
    if "title" in block:
        _text(block["title"], f"{ptr}/title", errors, 2000, plain_only=True)


def _input(block: dict[str, Any], ptr: str, errors: Errors) -> None:
    _text(block.get("label"), f"{ptr}/label", errors, 2000, plain_only=True)
    if "hint" in block:
        _text(block["hint"], f"{ptr}/hint", errors, 2000, plain_only=True)
    if "element" not in block:
        _err(errors, "must provide an element", f"{ptr}/element")
        return
    _element(block["element"], f"{ptr}/element", errors, INPUT_ELEMENTS)


def _rich_text(block: dict[str, Any], ptr: str, errors: Errors) -> None:
    _elements(block, ptr, errors, 1000)


def _markdown(block: dict[str, Any], ptr: str, errors: Errors) -> None:
    text = block.get("text")
    if not isinstance(text, str) or not text:
        _err(errors, "must be more than 0 characters", f"{ptr}/text")
    _max_len(text, 12000, f"{ptr}/text", errors)


TASK_STATUSES = frozenset({"pending", "in_progress", "complete", "error"})


def _task_card(block: dict[str, Any], ptr: str, errors: Errors) -> None:
    """A task (slack_sdk ``TaskCardBlock``): ``task_id``, a plain ``title``, a ``status`` of
    Slack's four, ``details``/``output`` each one rich_text."""
    for key in ("task_id", "title"):
        if not isinstance(block.get(key), str) or not block[key]:
            _err(errors, "must be more than 0 characters", f"{ptr}/{key}")
    if block.get("status") not in TASK_STATUSES:
        _err(errors, "must be one of pending, in_progress, complete, error", f"{ptr}/status")
    for key in ("details", "output"):
        part = block.get(key)
        if part is not None and (not isinstance(part, dict) or part.get("type") != "rich_text"):
            _err(errors, "must be a rich_text block", f"{ptr}/{key}")


def _plan(block: dict[str, Any], ptr: str, errors: Errors) -> None:
    if not isinstance(block.get("title"), str) or not block["title"]:
        _err(errors, "must be more than 0 characters", f"{ptr}/title")
    for i, task in enumerate(block.get("tasks") or []):
        if not isinstance(task, dict) or task.get("type") != "task_card":
            _err(errors, "must be a task_card", f"{ptr}/tasks/{i}")
        else:
            _task_card(task, f"{ptr}/tasks/{i}", errors)


BLOCKS: dict[str, Check] = {
    "section": _section,
    "header": _header,
    "context": _context,
    "actions": _actions,
    "divider": _lenient,
    "image": _image_block,
    "input": _input,
    "rich_text": _rich_text,
    "markdown": _markdown,
    "task_card": _task_card,
    "plan": _plan,
    "video": _lenient,
    "file": _lenient,
}


def validate_blocks(blocks: Any, limit: int = MESSAGE_BLOCK_LIMIT, base: str = "/blocks") -> Errors:
    """All problems in a list of blocks; empty means Slack would accept it."""
    errors: Errors = []
    if not isinstance(blocks, list):
        _err(errors, "must provide an array", base)
        return errors
    if len(blocks) > limit:
        _err(errors, f"no more than {limit} items allowed", base)
    seen: set[str] = set()
    for i, block in enumerate(blocks):
        ptr = f"{base}/{i}"
        kind = block.get("type") if isinstance(block, dict) else None
        check = BLOCKS.get(kind) if isinstance(kind, str) else None
        if not isinstance(block, dict) or check is None:
            _err(errors, "must provide an object with a valid block type", ptr)
            continue
        _ids(block, ptr, errors)
        block_id = block.get("block_id")
        if isinstance(block_id, str):
            if block_id in seen:
                _err(errors, f"duplicate block_id '{block_id}'", f"{ptr}/block_id")
            seen.add(block_id)
        check(block, ptr, errors)
    return errors


def validate_view(view: Any) -> Errors:
    """A modal or home view: title/submit/close limits, metadata, blocks."""
    errors: Errors = []
    if not isinstance(view, dict):
        _err(errors, "must provide an object", "/view")
        return errors
    kind = view.get("type")
    if kind not in {"modal", "home"}:
        _err(errors, "must be a valid enum value", "/view/type")
        return errors
    if kind == "modal":
        _text(view.get("title"), "/view/title", errors, 24, plain_only=True)
    for key in ("submit", "close"):
        if view.get(key) is not None:
            _text(view[key], f"/view/{key}", errors, 24, plain_only=True)
    _max_len(view.get("private_metadata"), 3000, "/view/private_metadata", errors)
    _max_len(view.get("callback_id"), 255, "/view/callback_id", errors)
    _max_len(view.get("external_id"), 255, "/view/external_id", errors)
    blocks = view.get("blocks", [])
    errors += validate_blocks(blocks, VIEW_BLOCK_LIMIT, "/view/blocks")
    has_input = isinstance(blocks, list) and any(
        isinstance(b, dict) and b.get("type") == "input" for b in blocks
    )
    if kind == "modal" and has_input and view.get("submit") is None:
        _err(errors, "submit is required when an input block is present", "/view/submit")
    return errors


def fill_ids(blocks: list[Any]) -> list[Any]:
    """Give blocks and elements the random ids Slack adds when it stores them.

    Interaction payloads always carry a block_id and action_id, even when the
    bot omitted them, so the stored copy must have them too.
    """
    for block in blocks:
        if not isinstance(block, dict):
            continue
        block.setdefault("block_id", _random_id())
        children = list(block.get("elements") or []) if block.get("type") == "actions" else []
        children += [block[k] for k in ("accessory", "element") if isinstance(block.get(k), dict)]
        for el in children:
            if isinstance(el, dict) and el.get("type") in ELEMENTS and el["type"] != "image":
                el.setdefault("action_id", _random_id())
    return blocks


def _random_id() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(5))
