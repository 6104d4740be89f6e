"""The static type check of CEL conditions (``bot.cel_check``), one expression at a time: the
type each construct has, and the exact refusal for each mistake (the words an operator reads
when the bot refuses to start). ``tests/test_policy_rules.py`` tests it through the policy file.
"""

from __future__ import annotations

from typing import Any

import pytest
from lark import Token, Tree

from bot.cel_check import (
    BOOL,
    DYN,
    INT,
    NULL,
    NUMBER,
    STRING,
    CelType,
    CelTypeError,
    Checker,
    check,
    from_json_schema,
)
from bot.policy_rules import compile_condition

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "n": {"type": "integer"},
        "x": {"type": "number"},
        "s": {"type": "string"},
        "b": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "any": {},
        "meta": {"type": "object", "additionalProperties": {"type": "integer"}},
        "closed": {
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "additionalProperties": False,
        },
        "empty": {"type": "object", "properties": {}, "additionalProperties": False},
        "free": {"type": "object"},
        "opt": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "ref": {"$ref": "#/$defs/Item"},
    },
    "$defs": {"Item": {"type": "object", "properties": {"id": {"type": "integer"}}}},
}
ARGS = from_json_schema(SCHEMA)


def type_of(condition: str) -> str:
    """The type of an expression, or ``! <the refusal>``."""
    try:
        return str(Checker(ARGS, "t").visit(compile_condition(condition)))
    except CelTypeError as error:
        return f"! {error}"


NO_NOPE = (
    "! the arguments of t have no 'nope' "
    "(known: any, b, closed, empty, free, meta, n, opt, ref, s, tags, x)"
)

CASES = [
    ("args.n < args.x", "bool"),
    ("args.s < args.s", "bool"),
    ("args.n == args.s", "! cannot compare int with string (==)"),
    ("args.n != null", "bool"),
    ("args.tags == [1]", "bool"),
    ("args.meta == args.closed", "bool"),
    ("args.tags == args.meta", "! cannot compare list(string) with map(string, dyn) (==)"),
    ("args.tags < args.tags", "! cannot order list(string) and list(string) (<)"),
    ("args.tags > args.tags", "! cannot order list(string) and list(string) (>)"),
    ("args.meta <= args.meta", "! cannot order map(string, dyn) and map(string, dyn) (<=)"),
    ("args.meta >= args.meta", "! cannot order map(string, dyn) and map(string, dyn) (>=)"),
    ("null < null", "! cannot order null and null (<)"),
    ("1 < null", "! cannot order int and null (<)"),
    ("null < 1", "! cannot order null and int (<)"),
    ("args.b > true", "bool"),
    ("time >= time", "bool"),
    ('duration("1h") > duration("2h")', "bool"),
    ('b"a" < b"b"', "bool"),
    ("args.any < 1", "bool"),
    ("1 < args.tags", "! cannot compare int with list(string) (<)"),
    ('"a" in args.tags', "bool"),
    ("1 in args.tags", "! cannot look for a int in a list(string)"),
    ('"k" in args.meta', "bool"),
    ("1 in args.meta", "! cannot look for a int in a map(string, dyn)"),
    ('"a" in args.closed', "bool"),
    ("1 in args.closed", "! cannot look for a int in a map(string, dyn)"),
    ("1 in args.any", "bool"),
    ("1 in args.n", "! 'in' needs a list or a map on its right, not int"),
    ('"a" in {"a": 1}', "bool"),
    ("args.x == 1", "bool"),
    ("1u == 1.5", "bool"),
    ("args.s == null", "bool"),
    ("null == args.s", "bool"),
    ('args.closed == {"a": "b"}', "bool"),
    ('args.any == "x"', "bool"),
    ('"x" == args.any', "bool"),
    ('time == "x"', "! cannot compare timestamp with string (==)"),
    ("args.n + args.n", "int"),
    ("args.x + args.n", "number"),
    ("args.n + args.x", "number"),
    ("args.x + args.x", "number"),
    ("1u + 1u", "uint"),
    ("1.5 + 1.5", "double"),
    ("args.n + 1.5", "! '+' is not defined for int and double"),
    ("1u + 1", "! '+' is not defined for uint and int"),
    ("args.any + 1", "dyn"),
    ("1 + args.any", "dyn"),
    ("args.s + args.s", "string"),
    ('b"a" + b"b"', "bytes"),
    ("args.tags + args.tags", "list(string)"),
    ("args.s - args.s", "! '-' is not defined for string and string"),
    ('time + duration("1h")', "timestamp"),
    ('time - duration("1h")', "timestamp"),
    ('duration("1h") + time', "! '+' is not defined for duration and timestamp"),
    ("time - time", "duration"),
    ("time + time", "! '+' is not defined for timestamp and timestamp"),
    ('duration("1h") + duration("1h")', "duration"),
    ('duration("1h") - duration("1h")', "duration"),
    ("args.meta + args.meta", "! '+' is not defined for map(string, dyn) and map(string, dyn)"),
    ("args.b + args.b", "! '+' is not defined for bool and bool"),
    ("args.n * 2", "int"),
    ("args.x / 2", "number"),
    ("args.n % 2", "int"),
    ("args.s * 2", "! '*' is not defined for string and int"),
    ("2 / args.s", "! '/' is not defined for int and string"),
    ("args.n % args.s", "! '%' is not defined for int and string"),
    ("args.any * 2", "dyn"),
    ('duration("1h") * 2', "! '*' is not defined for duration and int"),
    ("2 * 2.0", "! '*' is not defined for int and double"),
    ("-args.n", "int"),
    ("-args.x", "number"),
    ('-duration("1h")', "duration"),
    ("-args.s", "! '-' needs a number, not string"),
    ("!args.b", "bool"),
    ("!args.n", "! '!' needs true or false, not int"),
    ("-args.any", "dyn"),
    ("!args.any", "bool"),
    ("args.b ? 1 : 2", "int"),
    ('args.b ? 1 : "a"', "dyn"),
    ("args.b ? 1 : 1.5", "dyn"),
    ("args.n ? 1 : 2", "! the condition of ?: must be true or false, not int"),
    ("args.any ? args.s : args.s", "string"),
    ("args.b || args.n > 1", "bool"),
    ("args.n || args.b", "! || needs true or false on both sides, not int"),
    ("args.b || args.n", "! || needs true or false on both sides, not int"),
    ("args.b && args.s", "! && needs true or false on both sides, not string"),
    ("args.s && args.b", "! && needs true or false on both sides, not string"),
    ("args.b && args.b && args.b", "bool"),
    ("who", "! unknown variable 'who' (a condition may use args, channel, requester, time, tool)"),
    ("type(args.n) == int", "bool"),
    ("args.closed.z", "! args.closed have no 'z' (known: a)"),
    (
        "args.nope",
        NO_NOPE,
    ),
    ("args.empty.z", "! args.empty have no 'z' (known: none)"),
    ("args.meta.k", "int"),
    ("args.any.k", "dyn"),
    ("args.n.k", "! a int has no fields (.k)"),
    ("args.tags.k", "! a list(string) has no fields (.k)"),
    ("args.ref.id", "int"),
    ("args.ref.zz", "! args.ref have no 'zz' (known: id)"),
    ('{"a": 1}.a', "int"),
    ("args.free.q", "dyn"),
    ("[args.closed][0].z", "! the value have no 'z' (known: a)"),
    ("args.tags[0]", "string"),
    ("args.tags[args.x]", "string"),
    ("args.tags[1u]", "string"),
    ('args.tags["a"]', "! a list is indexed by a number, not string"),
    ('args["n"]', "int"),
    ("args['n']", "int"),
    (
        'args["nope"]',
        NO_NOPE,
    ),
    ("args[args.s]", "dyn"),
    ('args.meta["k"]', "int"),
    ("args.n[0]", "! a int cannot be indexed"),
    ("args.any[0]", "dyn"),
    ('args.free["q"]', "dyn"),
    ('{"a": 1}["a"]', "int"),
    ("args.s[0]", "! a string cannot be indexed"),
    ('args[r"n"]', "dyn"),
    ('args[b"n"]', "dyn"),
    ('args[("n")]', "int"),
    ("has(args.opt)", "bool"),
    (
        "has(args.nope)",
        NO_NOPE,
    ),
    ("has(1)", "! has() takes one field, e.g. has(args.reason)"),
    ("has(args.meta.k)", "bool"),
    ("has(args.n.k)", "! has() needs a field of a map, not of a int"),
    ("size(args.s)", "int"),
    ("size(args.tags)", "int"),
    ("size(args.meta)", "int"),
    ("size(args.closed)", "int"),
    ('size(b"a")', "int"),
    ("size(args.n)", "! size() needs a string, list or map, not int"),
    ("size(args.s, 1)", "! unknown function size() with 2 argument(s)"),
    ("int(args.s)", "int"),
    ("string(args.n)", "string"),
    ("double(1)", "double"),
    ("uint(1)", "uint"),
    ('bool("true")', "bool"),
    ('bytes("a")', "bytes"),
    ('timestamp("2026-01-01T00:00:00Z")', "timestamp"),
    ('duration("1h")', "duration"),
    ("dyn(1)", "dyn"),
    ("type(1)", "type"),
    ("int()", "int"),
    ("int(1, 2)", "! unknown function int() with 2 argument(s)"),
    ('matches(args.s, "a")', "bool"),
    ('startsWith(args.s, "a")', "bool"),
    ('endsWith(args.s, "a")', "bool"),
    ('contains(args.s, "a")', "bool"),
    (
        'contains(args.n, "a")',
        "! .contains() is a string method taking a string (int.contains(string))",
    ),
    ("nofun(1)", "! unknown function nofun() with 1 argument(s)"),
    ('args.s.startsWith("a")', "bool"),
    ('args.s.endsWith("a")', "bool"),
    ('args.s.contains("a")', "bool"),
    ('args.s.matches("a")', "bool"),
    (
        "args.s.startsWith(1)",
        "! .startsWith() is a string method taking a string (string.startsWith(int))",
    ),
    (
        'args.n.contains("a")',
        "! .contains() is a string method taking a string (int.contains(string))",
    ),
    ("args.s.contains()", "! .contains() is a string method taking a string (string.contains())"),
    (
        'args.s.contains("a", "b")',
        "! .contains() is a string method taking a string (string.contains(string, string))",
    ),
    ("args.any.contains(args.any)", "bool"),
    ("time.getHours()", "int"),
    ('time.getHours("UTC")', "int"),
    ("time.getHours(1)", "! .getHours() takes a time zone name, not int"),
    ("args.s.getHours()", "! .getHours() needs a timestamp (e.g. time), not string"),
    ('time.getHours("a", "b")', "! .getHours() needs a timestamp (e.g. time), not timestamp"),
    ('duration("1h").getMinutes()', "int"),
    ("args.any.getHours()", "int"),
    ("time.getFullYear()", "int"),
    ("time.getMonth()", "int"),
    ("time.getDate()", "int"),
    ("time.getDayOfMonth()", "int"),
    ("time.getDayOfWeek()", "int"),
    ("time.getDayOfYear()", "int"),
    ("time.getMinutes()", "int"),
    ("time.getSeconds()", "int"),
    ("time.getMilliseconds()", "int"),
    ("args.s.size()", "int"),
    ("args.n.size()", "! .size() needs a string, list or map, not int"),
    ("args.tags.size()", "int"),
    ("args.meta.size()", "int"),
    ("args.closed.size()", "int"),
    ('b"a".size()', "int"),
    ("args.s.size(1)", "! unknown method .size() on string"),
    ("args.s.nope()", "! unknown method .nope() on string"),
    ('args.tags.all(t, t == "a")', "bool"),
    ('args.tags.exists(t, t == "a")', "bool"),
    ('args.tags.exists_one(t, t == "a")', "bool"),
    ("args.tags.map(t, size(t))", "list(int)"),
    ('args.tags.filter(t, t == "a")', "list(string)"),
    ('args.meta.all(k, k == "a")', "bool"),
    ("args.closed.exists(k, k + 1 == 2)", "! '+' is not defined for string and int"),
    ("args.meta.exists(k, k + 1 == 2)", "! '+' is not defined for string and int"),
    ("args.n.all(t, true)", "! .all() needs a list or a map, not int"),
    ("args.any.all(t, true)", "bool"),
    ("args.tags.all(t)", "! .all() takes a variable and an expression, e.g. .all(x, x > 0)"),
    ("args.tags.all(1, true)", "! .all() takes a variable and an expression, e.g. .all(x, x > 0)"),
    ("args.tags.all(t, t)", "! .all() needs a condition, not string"),
    ("args.tags.exists(t, t)", "! .exists() needs a condition, not string"),
    ("args.tags.exists_one(t, t)", "! .exists_one() needs a condition, not string"),
    ("args.tags.map(t, t)", "list(string)"),
    ("args.tags.filter(t, 1)", "! .filter() needs a condition, not int"),
    (
        "args.tags.all(t, true) && t",
        "! unknown variable 't' (a condition may use args, channel, requester, time, tool)",
    ),
    ('args.tags.map(tool, size(tool)) == [1] && tool.startsWith("x")', "bool"),
    ('args.tags.all(t, [1].all(t, t > 0) && t.startsWith("a"))', "bool"),
    (".args", "! qualified names (.name) are not available in conditions"),
    ("T{a: 1}", "! message construction (Type{...}) is not available in conditions"),
    (".f(1)", "! qualified names (.name) are not available in conditions"),
    ("[1, 2]", "list(int)"),
    ('[1, "a"]', "list(dyn)"),
    ("[]", "list(dyn)"),
    ('{"a": 1}', "map(int)"),
    ('{"a": 1, "b": "c"}', "map(dyn)"),
    ("{}", "map(dyn)"),
    ('{1: "a"}', "map(string)"),
    ('{"a": 1, "b": 2}', "map(int)"),
    ("args.any", "dyn"),
    ('{"a": 1}.exists(k, k + 1 == 2)', "bool"),
    ('1 in {1: "a"}', "bool"),
    ("args.n != args.s", "! cannot compare int with string (!=)"),
    ('args.x + "a"', "! '+' is not defined for number and string"),
    ("'''x'''", "string"),
    ("true", "bool"),
    ('has({"a": 1}.a)', "bool"),
    ('size({"a": 1})', "int"),
    ('{"a": 1}.size()', "int"),
]


@pytest.mark.parametrize(("condition", "expected"), CASES)
def test_each_construct_has_its_type_or_its_refusal(condition: str, expected: str) -> None:
    assert type_of(condition) == expected


def test_a_condition_must_be_true_or_false_and_dyn_is_let_through() -> None:
    assert check(compile_condition("args.n > 1"), ARGS, "t") == BOOL
    assert check(compile_condition("args.any"), ARGS, "t") == DYN
    with pytest.raises(CelTypeError, match=r"^the condition must be true or false, not int$"):
        check(compile_condition("args.n"), ARGS, "t")


ITEM = {"type": "object", "properties": {"id": {"type": "integer"}}}


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "integer"}, INT),
        ({"type": "number"}, NUMBER),
        ({"type": "string"}, STRING),
        ({"type": "boolean"}, BOOL),
        ({"type": "null"}, NULL),
        ({}, DYN),
        ({"type": ["string", "null"]}, DYN),
        ({"type": "array", "items": {"type": "integer"}}, CelType("list", INT)),
        ({"type": "array"}, CelType("list", DYN)),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, STRING),
        ({"oneOf": [{"type": "null"}, {"type": "integer"}]}, INT),
        ({"anyOf": ["junk", {"type": "integer"}]}, INT),
        ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, DYN),
        ({"$ref": "#/$defs/Item", "$defs": {"Item": {"type": "integer"}}}, INT),
        ({"$ref": "#/$defs/Gone", "$defs": {"Item": {"type": "integer"}}}, DYN),
        ({"$ref": "#/$defs/Item", "$defs": {"Item": True}}, DYN),
        ({"$ref": "#/$defs/Item"}, DYN),
        ({"$ref": "Item", "$defs": {"Item": {"type": "integer"}}}, INT),
        ({"type": "object"}, CelType("object", DYN, {}, open=True)),
        # properties and no additionalProperties: closed (what pydantic writes for a model)
        (ITEM, CelType("object", DYN, {"id": INT}, open=False)),
        (
            {"properties": {"id": {"type": "integer"}, "bad": 3}},
            CelType("object", DYN, {"id": INT}, open=False),
        ),
        ({**ITEM, "additionalProperties": True}, CelType("object", DYN, {"id": INT}, open=True)),
        (
            {"type": "object", "additionalProperties": {"type": "integer"}},
            CelType("object", INT, {}, open=True),
        ),
        (
            {
                "type": "object",
                "properties": {"item": {"$ref": "#/$defs/Item"}},
                "$defs": {
                    "Item": {**ITEM, "properties": {"sub": {"$ref": "#/$defs/Sub"}}},
                    "Sub": {"type": "string"},
                },
            },
            CelType(
                "object",
                DYN,
                {"item": CelType("object", DYN, {"sub": STRING}, open=False)},
                open=False,
            ),
        ),
        (
            {
                "type": "array",
                "items": {"$ref": "#/$defs/Sub"},
                "$defs": {"Sub": {"type": "string"}},
            },
            CelType("list", STRING),
        ),
        (
            {
                "anyOf": [{"$ref": "#/$defs/Sub"}, {"type": "null"}],
                "$defs": {"Sub": {"type": "string"}},
            },
            STRING,
        ),
        (
            {
                "type": "object",
                "additionalProperties": {"$ref": "#/$defs/Sub"},
                "$defs": {"Sub": {"type": "string"}},
            },
            CelType("object", STRING, {}, open=True),
        ),
        (
            {"$ref": "#/$defs/A", "$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"type": "string"}}},
            STRING,
        ),
    ],
)
def test_json_schemas_become_cel_types(schema: dict[str, Any], expected: CelType) -> None:
    assert from_json_schema(schema) == expected


def test_definitions_given_apart_from_the_schema_are_followed() -> None:
    defs = {"A": {"type": "string"}}
    assert (
        from_json_schema({"$ref": "#/$defs/A", "$defs": {"A": {"type": "integer"}}}, defs) == STRING
    )


@pytest.mark.parametrize(
    ("cel_type", "shown"),
    [
        (CelType("list", INT), "list(int)"),
        (CelType("list"), "list(dyn)"),
        (CelType("map", INT), "map(int)"),
        (CelType("map"), "map(dyn)"),
        (CelType("object", INT, {"a": STRING}), "map(string, dyn)"),
        (INT, "int"),
    ],
)
def test_types_are_named_as_cel_names_them(cel_type: CelType, shown: str) -> None:
    assert str(cel_type) == shown


def test_a_tree_the_checker_does_not_know_is_refused_in_words() -> None:
    checker = Checker(DYN, "t")
    with pytest.raises(CelTypeError, match=r"^unexpected y$"):
        checker.visit(Token("X", "y"))
    one = Tree("literal", [Token("INT_LIT", "1")])
    with pytest.raises(CelTypeError, match=r"^unsupported expression \(weird\)$"):
        checker.visit(Tree("weird", [one, one]))
