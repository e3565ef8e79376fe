"""Checks a JSON schema before anything compiles it into a llama.cpp grammar.

llama.cpp turns a schema into a grammar and then into a native parser; a schema it does not expect can
abort or crash the process that runs it (a quote or NUL in an `enum` did, issue 10), and a `$ref` it
cannot resolve or an unanchored `pattern` made the request fail late with a 502. So every schema from
a client — and every schema our own stages send — is checked here first: only the keywords the
converter supports, local `$ref`s that exist, anchored patterns without look-around or back-references,
literal strings (enum, const, property names) without control characters, quotes or backslashes, and a
bounded size. A problem is a BadInputError (HTTP 422) that names the place in the schema.

`min_answer_tokens` estimates the shortest answer a schema allows, so that a `max_tokens` too small
to ever close the JSON is refused up front instead of failing after the model ran.
"""

from __future__ import annotations

import json
import re
from typing import Any

from taleloom.errors import BadInputError

TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})
FORMATS = frozenset({"date", "time", "date-time", "uuid"})
ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$schema", "$id", "$comment"})
KEYWORDS = frozenset({"type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems",
                      "maxItems", "enum", "const", "pattern", "format", "minLength", "maxLength", "minimum",
                      "maximum", "exclusiveMinimum", "exclusiveMaximum", "anyOf", "oneOf", "allOf", "$ref",
                      "$defs", "definitions"}) | ANNOTATIONS
MAX_CHARS = 20_000  # the schema as JSON
MAX_NODES = 400  # sub-schemas
MAX_DEPTH = 12
MAX_ENUM = 256  # values in one enum
MAX_LITERAL = 200  # characters in one enum/const string or property name
MAX_PATTERN = 200
HINT = ("use plain JSON-schema keywords (type, properties, required, items, enum, const, minLength, maxLength, "
        "minItems, maxItems, anchored pattern, anyOf, local $ref to $defs)")


def check_schema(schema: Any, where: str = "the schema") -> None:
    """Raise BadInputError naming what is wrong when llama.cpp should not be given `schema`."""
    if not isinstance(schema, dict):
        raise BadInputError(f"{where} must be a JSON object, not {type(schema).__name__}", HINT)
    size = len(json.dumps(schema, ensure_ascii=False))
    if size > MAX_CHARS:
        raise BadInputError(f"{where} is {size:,} characters of JSON; at most {MAX_CHARS:,} are accepted",
                            "make the schema smaller (fewer enum values, shorter descriptions)")
    _Walker(schema, where).walk(schema, "#", 0)


class _Walker:
    def __init__(self, root: dict[str, Any], where: str):
        self.root, self.where, self.nodes = root, where, 0

    def fail(self, path: str, problem: str, hint: str = HINT) -> None:
        raise BadInputError(f"{self.where} at {path}: {problem}", hint)

    def walk(self, node: Any, path: str, depth: int) -> None:
        if isinstance(node, bool):  # true / false are schemas too
            return
        if not isinstance(node, dict):
            self.fail(path, f"a sub-schema must be an object, not {type(node).__name__}")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.fail(path, f"more than {MAX_NODES} sub-schemas", "make the schema smaller")
        if depth > MAX_DEPTH:
            self.fail(path, f"nested deeper than {MAX_DEPTH} levels", "flatten the schema")
        unknown = sorted(set(node) - KEYWORDS)
        if unknown:
            self.fail(path, f"unsupported keyword(s) {', '.join(map(repr, unknown))}")
        self._type(node.get("type"), path)
        for key in ("enum", "const"):
            if key in node:
                values = node[key] if key == "enum" else [node[key]]
                if key == "enum" and (not isinstance(values, list) or not values or len(values) > MAX_ENUM):
                    self.fail(f"{path}/enum", f"enum must be a list of 1 to {MAX_ENUM} values")
                for i, value in enumerate(values):
                    self._literal_value(value, f"{path}/{key}" + (f"/{i}" if key == "enum" else ""))
        for key in ("minLength", "maxLength", "minItems", "maxItems"):
            if key in node and (not isinstance(node[key], int) or isinstance(node[key], bool) or node[key] < 0):
                self.fail(f"{path}/{key}", f"{key} must be a whole number ≥ 0, not {node[key]!r}")
        for low, high in (("minLength", "maxLength"), ("minItems", "maxItems")):
            if low in node and high in node and node[low] > node[high]:
                self.fail(path, f"{low} {node[low]} is larger than {high} {node[high]}: nothing could match")
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if key in node and (not isinstance(node[key], int | float) or isinstance(node[key], bool)):
                self.fail(f"{path}/{key}", f"{key} must be a number")
        if "pattern" in node:
            self._pattern(node["pattern"], f"{path}/pattern")
        if "format" in node and node["format"] not in FORMATS:
            self.fail(f"{path}/format", f"format {node['format']!r} is not supported; "
                      f"known: {', '.join(sorted(FORMATS))}", "drop it, or use an anchored pattern")
        if "$ref" in node:
            self._ref(node["$ref"], f"{path}/$ref")
        self._children(node, path, depth)

    def _children(self, node: dict[str, Any], path: str, depth: int) -> None:
        props = node.get("properties", {})
        if not isinstance(props, dict):
            self.fail(f"{path}/properties", "properties must be an object of name → schema")
        for name, sub in props.items():
            self._literal(name, f"{path}/properties", "property name")
            self.walk(sub, f"{path}/properties/{name}", depth + 1)
        required = node.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            self.fail(f"{path}/required", "required must be a list of property names")
        for key in ("$defs", "definitions"):
            defs = node.get(key, {})
            if not isinstance(defs, dict):
                self.fail(f"{path}/{key}", f"{key} must be an object of name → schema")
            for name, sub in defs.items():
                self._literal(name, f"{path}/{key}", "definition name")
                self.walk(sub, f"{path}/{key}/{name}", depth + 1)
        for key in ("additionalProperties", "items"):
            if key in node:
                sub = node[key]
                for i, s in enumerate(sub if isinstance(sub, list) else [sub]):
                    self.walk(s, f"{path}/{key}" + (f"/{i}" if isinstance(sub, list) else ""), depth + 1)
        for key in ("prefixItems", "anyOf", "oneOf", "allOf"):
            if key in node:
                subs = node[key]
                if not isinstance(subs, list) or not subs:
                    self.fail(f"{path}/{key}", f"{key} must be a non-empty list of schemas")
                for i, s in enumerate(subs):
                    self.walk(s, f"{path}/{key}/{i}", depth + 1)

    def _type(self, kind: Any, path: str) -> None:
        if kind is None:
            return
        kinds = kind if isinstance(kind, list) else [kind]
        bad = [k for k in kinds if not isinstance(k, str) or k not in TYPES]
        if bad or not kinds:
            self.fail(f"{path}/type", f"type {kind!r} is not a JSON-schema type; known: {', '.join(sorted(TYPES))}")

    def _literal_value(self, value: Any, path: str) -> None:
        if isinstance(value, str):
            self._literal(value, path, "string")
        elif isinstance(value, list | dict):
            text = json.dumps(value, ensure_ascii=False)
            if len(text) > MAX_LITERAL:
                self.fail(path, f"a value of {len(text)} characters; at most {MAX_LITERAL}")
            for s in _strings(value):
                self._literal(s, path, "string")

    def _literal(self, text: str, path: str, what: str) -> None:
        if not isinstance(text, str):
            self.fail(path, f"{what} must be text")
        if len(text) > MAX_LITERAL:
            self.fail(path, f"{what} of {len(text)} characters; at most {MAX_LITERAL}")
        for ch in text:
            if ch in '"\\' or ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0:
                self.fail(path, f"{what} {text[:40]!r} contains {ch!r} (U+{ord(ch):04X}); quotes, backslashes and "
                          "control characters are not allowed in enum/const values and names",
                          "use plain words (the answer is JSON: a quote inside would have to be escaped anyway)")

    def _pattern(self, pattern: Any, path: str) -> None:
        if not isinstance(pattern, str) or not pattern:
            self.fail(path, "pattern must be a non-empty string")
        if len(pattern) > MAX_PATTERN:
            self.fail(path, f"pattern of {len(pattern)} characters; at most {MAX_PATTERN}")
        if not (pattern.startswith("^") and pattern.endswith("$")) or pattern.endswith("\\$"):
            self.fail(path, f"pattern {pattern!r} is not anchored", "write it as ^...$ (the whole value must match)")
        if "(?" in pattern or re.search(r"\\[1-9bBAZzG]", pattern):
            self.fail(path, f"pattern {pattern!r} uses look-around, back-references or \\b/\\A/\\Z, "
                      "which a grammar cannot express", "use plain classes, groups, alternation and {m,n} counts")
        if any(ord(ch) < 32 for ch in pattern):
            self.fail(path, "pattern contains control characters")
        try:
            re.compile(pattern)
        except re.error as e:
            self.fail(path, f"pattern {pattern!r} is not a valid regular expression ({e})")

    def _ref(self, ref: Any, path: str) -> None:
        if not isinstance(ref, str) or not (ref == "#" or ref.startswith(("#/$defs/", "#/definitions/"))):
            self.fail(path, f"$ref {ref!r} is not a local reference",
                      "point $ref at a definition in the same schema: #/$defs/NAME (no URLs)")
        node: Any = self.root
        for part in ref[2:].split("/") if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                self.fail(path, f"$ref {ref!r} points at nothing: no {part!r} there",
                          "add the definition under $defs, or fix the name")
            node = node[part]


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)


def min_answer_tokens(schema: dict[str, Any]) -> int:
    """About how many tokens the shortest JSON answer to `schema` needs (≈3 characters a token, plus a margin)."""
    return len(json.dumps(_shortest(schema, schema, 0), ensure_ascii=False)) // 3 + 4


def _shortest(node: Any, root: dict[str, Any], depth: int) -> Any:
    """A smallest value that `node` accepts (approximate: used only for the max_tokens check)."""
    if not isinstance(node, dict) or depth > MAX_DEPTH:
        return None
    if "const" in node:
        return node["const"]
    if node.get("enum"):
        return min(node["enum"], key=lambda v: len(json.dumps(v)))
    if "$ref" in node and node["$ref"] != "#":
        target: Any = root
        for part in node["$ref"][2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return _shortest(target, root, depth + 1)
    for key in ("anyOf", "oneOf"):
        if node.get(key):
            return min((_shortest(s, root, depth + 1) for s in node[key]), key=lambda v: len(json.dumps(v)))
    kind = node.get("type")
    kind = (kind[0] if kind else None) if isinstance(kind, list) else kind
    if kind == "object" or (kind is None and "properties" in node):
        props = node.get("properties", {})
        return {name: _shortest(props.get(name, {}), root, depth + 1) for name in node.get("required", [])}
    if kind == "array":
        items = node.get("items", {})
        return [_shortest(items, root, depth + 1) for _ in range(min(node.get("minItems", 0), 50))]
    if kind == "string":
        return "x" * min(node.get("minLength", 0), 1000)
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return True
    return None
