"""A static type check of CEL conditions, against the tool's argument schema.

``cel-python`` (``celpy``) parses CEL into a Lark tree and evaluates it, but checks no types
before it runs: ``args.amout > 1000`` or ``args.amount > "x"`` fail only when a call arrives.
This module walks the parse tree once at start-up with the types the condition may see:
``args`` (the tool's JSON schema turned into CEL types), ``tool``, ``requester`` and
``channel`` (strings) and ``time`` (a timestamp). It refuses an unknown variable, an argument
the schema does not have, an unknown function or method, an operator between types CEL does
not define it for, and a condition that is not a boolean. Whatever the schema leaves open
(``dyn``: a property without a type, an object with additional properties) is let through, and
a mistake there is a run-time error, which fails closed (``bot.policy_rules``).

The checker follows CEL's rules where a schema is precise and stays permissive where JSON is
not: a JSON ``number`` may hold an int or a double, so it is compared and combined with both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lark import Token, Tree


class CelTypeError(ValueError):
    """A condition that cannot be right for the types it sees, in words for the policy file."""


@dataclass(frozen=True)
class CelType:
    kind: str
    """int, uint, double, number (a JSON number: int or double), string, bool, bytes, null,
    timestamp, duration, list, map, object (known fields), type, or dyn (anything)."""
    elem: CelType | None = None
    """A list's element type, a map's (and an open object's) value type."""
    fields: Mapping[str, CelType] = field(default_factory=dict)
    open: bool = True
    """An object that may have fields beyond ``fields`` (their type: ``elem`` or dyn)."""

    def __str__(self) -> str:
        if self.kind == "list":
            return f"list({self.elem or DYN})"
        if self.kind in ("map", "object"):
            return "map(string, dyn)" if self.kind == "object" else f"map({self.elem or DYN})"
        return self.kind


DYN = CelType("dyn")
INT, UINT, DOUBLE, NUMBER = CelType("int"), CelType("uint"), CelType("double"), CelType("number")
STRING, BOOL, BYTES, NULL = CelType("string"), CelType("bool"), CelType("bytes"), CelType("null")
TIMESTAMP, DURATION, TYPE = CelType("timestamp"), CelType("duration"), CelType("type")
NUMERIC = frozenset({"int", "uint", "double", "number"})


def from_json_schema(schema: Mapping[str, Any], defs: Mapping[str, Any] | None = None) -> CelType:
    """The CEL type of values a JSON schema admits (pydantic's ``$ref``/``$defs`` followed;
    ``anyOf`` with ``null`` is the other branch, since a missing or null value fails at run
    time anyway; anything else unclear is dyn)."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        target = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1])
        return from_json_schema(target, defs) if isinstance(target, Mapping) else DYN
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = [
                b for b in schema[key] if isinstance(b, Mapping) and b.get("type") != "null"
            ]
            return from_json_schema(branches[0], defs) if len(branches) == 1 else DYN
    kind = schema.get("type")
    simple = {"integer": INT, "number": NUMBER, "string": STRING, "boolean": BOOL, "null": NULL}
    if isinstance(kind, str) and kind in simple:
        return simple[kind]
    if kind == "array":
        items = schema.get("items")
        return CelType("list", from_json_schema(items, defs) if isinstance(items, Mapping) else DYN)
    properties = schema.get("properties")
    if kind == "object" or isinstance(properties, Mapping):
        fields = {
            str(name): from_json_schema(value, defs)
            for name, value in (properties or {}).items()
            if isinstance(value, Mapping)
        }
        extra = schema.get("additionalProperties", not fields)
        value = from_json_schema(extra, defs) if isinstance(extra, Mapping) else DYN
        return CelType("object", value, fields, open=extra is not False)
    return DYN


VARIABLES: dict[str, CelType] = {
    "tool": STRING,
    "requester": STRING,
    "channel": STRING,
    "time": TIMESTAMP,
}
"""The variables beside ``args`` a condition may use (README "Rules on arguments")."""

_TIME_PARTS = [
    "getFullYear",
    "getMonth",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
]
_CONVERSIONS = {
    "int": INT,
    "uint": UINT,
    "double": DOUBLE,
    "string": STRING,
    "bool": BOOL,
    "bytes": BYTES,
    "timestamp": TIMESTAMP,
    "duration": DURATION,
    "dyn": DYN,
    "type": TYPE,
}
_STRING_METHODS = {"startsWith": BOOL, "endsWith": BOOL, "contains": BOOL, "matches": BOOL}
_MACROS = ("all", "exists", "exists_one", "map", "filter")


def _is(t: CelType, *kinds: str) -> bool:
    return t.kind == "dyn" or t.kind in kinds


def _compatible(a: CelType, b: CelType) -> bool:
    """May ``a == b`` (or ``a < b``) be asked: same family, or either unknown (or null)."""
    if "dyn" in (a.kind, b.kind):
        return True
    if a.kind in NUMERIC and b.kind in NUMERIC:
        return True
    if "null" in (a.kind, b.kind):
        return True
    family = {"object": "map"}
    return family.get(a.kind, a.kind) == family.get(b.kind, b.kind)


class Checker:
    """One condition's check: :meth:`check` returns its type or raises :class:`CelTypeError`."""

    def __init__(self, args: CelType, tool: str) -> None:
        self.scope: dict[str, CelType] = {"args": args, **VARIABLES}
        self.tool = tool

    def check(self, tree: Tree[Token]) -> CelType:
        result = self.visit(tree)
        if not _is(result, "bool"):
            raise CelTypeError(f"the condition must be true or false, not {result}")
        return result

    def visit(self, node: Tree[Token] | Token) -> CelType:
        if isinstance(node, Token):
            raise CelTypeError(f"unexpected {node!s}")
        handler: Callable[[Tree[Token]], CelType] | None = getattr(self, f"_{node.data}", None)
        if handler is not None:
            return handler(node)
        children = [c for c in node.children if c is not None]
        if len(children) == 1:
            return self.visit(children[0])
        raise CelTypeError(f"unsupported expression ({node.data})")

    # -- structure ---------------------------------------------------------------------

    def _parts(self, node: Tree[Token]) -> list[Tree[Token]]:
        return [c for c in node.children if isinstance(c, Tree)]

    def _expr(self, node: Tree[Token]) -> CelType:
        parts = self._parts(node)
        if len(parts) == 1:
            return self.visit(parts[0])
        condition, yes, no = (self.visit(p) for p in parts)
        if not _is(condition, "bool"):
            raise CelTypeError(f"the condition of ?: must be true or false, not {condition}")
        return yes if _compatible(yes, no) and yes.kind == no.kind else DYN

    def _logical(self, node: Tree[Token], words: str) -> CelType:
        parts = self._parts(node)
        if len(parts) == 1:
            return self.visit(parts[0])
        for part in parts:
            side = self.visit(part)
            if not _is(side, "bool"):
                raise CelTypeError(f"{words} needs true or false on both sides, not {side}")
        return BOOL

    def _conditionalor(self, node: Tree[Token]) -> CelType:
        return self._logical(node, "||")

    def _conditionaland(self, node: Tree[Token]) -> CelType:
        return self._logical(node, "&&")

    def _binary(self, node: Tree[Token]) -> tuple[str, CelType, CelType] | CelType:
        parts = self._parts(node)
        if len(parts) == 1:
            return self.visit(parts[0])
        operator, right = parts
        [left] = self._parts(operator)
        return operator.data, self.visit(left), self.visit(right)

    def _relation(self, node: Tree[Token]) -> CelType:
        found = self._binary(node)
        if isinstance(found, CelType):
            return found
        op, left, right = found
        word = op.removeprefix("relation_")
        if word == "in":
            if _is(right, "list"):
                element = right.elem or DYN
            elif _is(right, "map", "object"):
                element = STRING if right.kind == "object" else DYN
            else:
                raise CelTypeError(f"'in' needs a list or a map on its right, not {right}")
            if not _compatible(left, element):
                raise CelTypeError(f"cannot look for a {left} in a {right}")
            return BOOL
        symbol = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}[word]
        if not _compatible(left, right):
            raise CelTypeError(f"cannot compare {left} with {right} ({symbol})")
        if word in ("lt", "le", "gt", "ge") and not (
            _is(left, *NUMERIC, "string", "timestamp", "duration", "bytes", "bool")
            and _is(right, *NUMERIC, "string", "timestamp", "duration", "bytes", "bool")
        ):
            raise CelTypeError(f"cannot order {left} and {right} ({symbol})")
        return BOOL

    def _arithmetic(self, op: str, left: CelType, right: CelType) -> CelType:
        if "dyn" in (left.kind, right.kind):
            return DYN
        if left.kind in NUMERIC and right.kind in NUMERIC:
            if "number" in (left.kind, right.kind) or left.kind == right.kind:
                return left if left.kind == right.kind else NUMBER
        elif op == "+" and left.kind == right.kind and left.kind in ("string", "bytes", "list"):
            return left
        elif op in "+-" and left.kind == "timestamp" and right.kind == "duration":
            return TIMESTAMP
        elif (op == "-" and left.kind == right.kind == "timestamp") or (
            op in "+-" and left.kind == right.kind == "duration"
        ):
            return DURATION
        raise CelTypeError(f"'{op}' is not defined for {left} and {right}")

    def _addition(self, node: Tree[Token]) -> CelType:
        found = self._binary(node)
        if isinstance(found, CelType):
            return found
        op, left, right = found
        return self._arithmetic("+" if op == "addition_add" else "-", left, right)

    def _multiplication(self, node: Tree[Token]) -> CelType:
        found = self._binary(node)
        if isinstance(found, CelType):
            return found
        op, left, right = found
        symbol = {"multiplication_mul": "*", "multiplication_div": "/"}.get(op, "%")
        if not (_is(left, *NUMERIC) and _is(right, *NUMERIC)):
            raise CelTypeError(f"'{symbol}' is not defined for {left} and {right}")
        return self._arithmetic(symbol, left, right)

    def _unary(self, node: Tree[Token]) -> CelType:
        parts = self._parts(node)
        if len(parts) == 1:
            return self.visit(parts[0])
        operator, operand = parts
        inner = self.visit(operand)
        if operator.data == "unary_not":
            if not _is(inner, "bool"):
                raise CelTypeError(f"'!' needs true or false, not {inner}")
            return BOOL
        if not _is(inner, *NUMERIC, "duration"):
            raise CelTypeError(f"'-' needs a number, not {inner}")
        return inner

    # -- leaves ------------------------------------------------------------------------

    def _literal(self, node: Tree[Token]) -> CelType:
        [token] = node.children
        kinds = {
            "INT_LIT": INT,
            "UINT_LIT": UINT,
            "FLOAT_LIT": DOUBLE,
            "STRING_LIT": STRING,
            "MLSTRING_LIT": STRING,
            "BYTES_LIT": BYTES,
            "BOOL_LIT": BOOL,
            "NULL_LIT": NULL,
        }
        return kinds.get(token.type if isinstance(token, Token) else "", DYN)

    def _ident(self, node: Tree[Token]) -> CelType:
        name = str(node.children[0])
        if name in self.scope:
            return self.scope[name]
        if name in _CONVERSIONS:
            return TYPE
        known = ", ".join(sorted(self.scope))
        raise CelTypeError(f"unknown variable {name!r} (a condition may use {known})")

    def _paren_expr(self, node: Tree[Token]) -> CelType:
        return self.visit(self._parts(node)[0])

    def _list_lit(self, node: Tree[Token]) -> CelType:
        items = [self.visit(e) for e in self._args(node)]
        kinds = {t.kind for t in items}
        return CelType("list", items[0] if len(kinds) == 1 else DYN)

    def _map_lit(self, node: Tree[Token]) -> CelType:
        parts = self._parts(node)
        values = [self.visit(e) for init in parts for e in self._parts(init)]
        return CelType("map", values[1] if len({v.kind for v in values[1::2]}) == 1 else DYN)

    def _args(self, node: Tree[Token]) -> list[Tree[Token]]:
        lists = [c for c in self._parts(node) if c.data == "exprlist"]
        return self._parts(lists[0]) if lists else []

    # -- members, functions, methods ----------------------------------------------------

    def _member_dot(self, node: Tree[Token]) -> CelType:
        target, name = node.children[0], str(node.children[1])
        return self._field(self.visit(target), name, target)

    def _field(self, owner: CelType, name: str, target: Any) -> CelType:
        if owner.kind == "object":
            if name in owner.fields:
                return owner.fields[name]
            if owner.open:
                return owner.elem or DYN
            what = "the arguments of " + self.tool if _text(target) == "args" else _text(target)
            known = ", ".join(sorted(owner.fields)) or "none"
            raise CelTypeError(f"{what} have no {name!r} (known: {known})")
        if _is(owner, "map"):
            return owner.elem or DYN
        raise CelTypeError(f"a {owner} has no fields (.{name})")

    def _member_index(self, node: Tree[Token]) -> CelType:
        target, index = self._parts(node)
        owner, key = self.visit(target), self.visit(index)
        if owner.kind == "list":
            if not _is(key, "int", "uint", "number"):
                raise CelTypeError(f"a list is indexed by a number, not {key}")
            return owner.elem or DYN
        if owner.kind == "object":
            literal = _string_literal(index)
            if literal is not None:
                return self._field(owner, literal, target)
            return DYN
        if _is(owner, "map"):
            return owner.elem or DYN
        raise CelTypeError(f"a {owner} cannot be indexed")

    def _ident_arg(self, node: Tree[Token]) -> CelType:
        name = str(node.children[0])
        args = self._args(node)
        if name == "has":
            if len(args) != 1 or _deepest(args[0]).data != "member_dot":
                raise CelTypeError("has() takes one field, e.g. has(args.reason)")
            member = _deepest(args[0])
            owner = self.visit(member.children[0])
            if not _is(owner, "map", "object"):
                raise CelTypeError(f"has() needs a field of a map, not of a {owner}")
            self._field(owner, str(member.children[1]), member.children[0])
            return BOOL
        types = [self.visit(a) for a in args]
        if name == "size" and len(types) == 1:
            if not _is(types[0], "string", "bytes", "list", "map", "object"):
                raise CelTypeError(f"size() needs a string, list or map, not {types[0]}")
            return INT
        if name in _CONVERSIONS and len(types) <= 1:
            return _CONVERSIONS[name]
        if name in ("matches", "startsWith", "endsWith", "contains") and len(types) == 2:
            return self._string_method(name, types[0], types[1:])
        raise CelTypeError(f"unknown function {name}() with {len(types)} argument(s)")

    def _member_dot_arg(self, node: Tree[Token]) -> CelType:
        target, name = node.children[0], str(node.children[1])
        owner = self.visit(target)
        args = self._args(node)
        if name in _MACROS:
            return self._macro(name, owner, args)
        types = [self.visit(a) for a in args]
        if name in _STRING_METHODS:
            return self._string_method(name, owner, types)
        if name in _TIME_PARTS:
            if not _is(owner, "timestamp", "duration") or len(types) > 1:
                raise CelTypeError(f".{name}() needs a timestamp (e.g. time), not {owner}")
            if types and not _is(types[0], "string"):
                raise CelTypeError(f".{name}() takes a time zone name, not {types[0]}")
            return INT
        if name == "size" and not types:
            return self._ident_size(owner)
        raise CelTypeError(f"unknown method .{name}() on {owner}")

    def _ident_size(self, owner: CelType) -> CelType:
        if not _is(owner, "string", "bytes", "list", "map", "object"):
            raise CelTypeError(f".size() needs a string, list or map, not {owner}")
        return INT

    def _string_method(self, name: str, owner: CelType, types: Sequence[CelType]) -> CelType:
        if not _is(owner, "string") or len(types) != 1 or not _is(types[0], "string"):
            shown = ", ".join(map(str, types))
            raise CelTypeError(
                f".{name}() is a string method taking a string ({owner}.{name}({shown}))"
            )
        return BOOL

    def _macro(self, name: str, owner: CelType, args: list[Tree[Token]]) -> CelType:
        if len(args) != 2 or _deepest(args[0]).data != "ident":
            raise CelTypeError(
                f".{name}() takes a variable and an expression, e.g. .{name}(x, x > 0)"
            )
        variable = str(_deepest(args[0]).children[0])
        if owner.kind == "list":
            element = owner.elem or DYN
        elif owner.kind == "object":
            element = STRING
        elif _is(owner, "map"):
            element = DYN
        else:
            raise CelTypeError(f".{name}() needs a list or a map, not {owner}")
        saved = self.scope.get(variable)
        self.scope[variable] = element
        try:
            body = self.visit(args[1])
        finally:
            if saved is None:
                del self.scope[variable]
            else:
                self.scope[variable] = saved
        if name in ("all", "exists", "exists_one", "filter") and not _is(body, "bool"):
            raise CelTypeError(f".{name}() needs a condition, not {body}")
        if name == "map":
            return CelType("list", body)
        return owner if name == "filter" else BOOL

    def _member_object(self, node: Tree[Token]) -> CelType:
        raise CelTypeError("message construction (Type{...}) is not available in conditions")

    def _dot_ident(self, node: Tree[Token]) -> CelType:
        raise CelTypeError("qualified names (.name) are not available in conditions")

    _dot_ident_arg = _dot_ident


def _deepest(node: Tree[Token]) -> Tree[Token]:
    """The node a chain of single-child wrappers (expr, conditionalor, ...) stands for."""
    while True:
        children = [c for c in node.children if c is not None]
        if node.data in ("member_dot", "ident", "literal", "ident_arg") or len(children) != 1:
            return node
        if not isinstance(children[0], Tree):
            return node
        node = children[0]


def _string_literal(node: Tree[Token]) -> str | None:
    leaf = _deepest(node)
    if leaf.data != "literal":
        return None
    token = leaf.children[0]
    if isinstance(token, Token) and token.type == "STRING_LIT" and token[:1] in "\"'":
        return str(token)[1:-1]
    return None


def _text(node: Any) -> str:
    leaf = _deepest(node) if isinstance(node, Tree) else node
    if isinstance(leaf, Tree) and leaf.data == "ident":
        return str(leaf.children[0])
    if isinstance(leaf, Tree) and leaf.data == "member_dot":
        return f"{_text(leaf.children[0])}.{leaf.children[1]}"
    return "the value"


def check(tree: Tree[Token], args: CelType, tool: str) -> CelType:
    """The type of a condition (a parsed CEL expression); :class:`CelTypeError` if wrong."""
    return Checker(args, tool).check(tree)
