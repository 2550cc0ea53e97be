"""Route templates as the Functions host (ASP.NET Core routing) reads them.

A template of literal segments and plain `{name}` parameters (every route this app has) is
matched by Starlette's router (`starlette.routing.compile_path`, the router the dev host serves
with), made case-insensitive for literals as ASP.NET is. What Starlette's router cannot do is kept
here, each because the Functions host accepts it and the dev host must refuse or match what Azure
does, never less:

* inline constraints `{id:int}` / `{id:guid}` / `{n:min(1):max(9)}` / `{code:regex(^[a-z]{{2}}$)}`
  and the rest of ASP.NET's list: Starlette's converters are `int` (no sign, no range), `float`,
  `uuid`, `path` and `str`, and no `min`/`max`/`range`/`length`/`regex`/`alpha`;
* optional `{name?}` and default `{name=value}` parameters: Starlette has neither;
* catch-all `{*rest}` / `{**rest}`, which may also match nothing (Starlette's `path` may not);
* complex segments like `{name}.{ext}`: Starlette allows one parameter per segment only;
* precedence and the overlap check: when several templates match a path the most specific wins
  as in ASP.NET (literal before complex segment before constrained parameter before parameter
  before catch-all), and the dev host refuses two templates one path could match (Starlette
  takes the first registered).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote

from starlette.routing import compile_path

from devhost.errors import StartError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_CONSTRAINT = re.compile(r"([A-Za-z]+)")
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)

Check = Callable[[str], bool]

_LITERAL_PRECEDENCE = 1
_COMPLEX_PRECEDENCE = 2
_CONSTRAINED_PRECEDENCE = 3
_PARAMETER_PRECEDENCE = 4
_CATCH_ALL_PRECEDENCE = 5


@dataclass(frozen=True)
class _Parameter:
    name: str
    checks: tuple[Check, ...]
    optional: bool
    default: str | None
    catch_all: bool


@dataclass(frozen=True)
class _Segment:
    parts: tuple[str | _Parameter, ...]

    @property
    def parameter(self) -> _Parameter | None:
        only = self.parts[0] if len(self.parts) == 1 else None
        return only if isinstance(only, _Parameter) else None


@dataclass(frozen=True)
class RouteTemplate:
    """A compiled route template; `match` returns route parameters or None."""

    template: str
    precedence: tuple[int, ...]
    _pattern: re.Pattern[str] = field(repr=False)
    _parameters: tuple[_Parameter, ...] = field(repr=False)
    _segments: tuple[_Segment, ...] = field(repr=False, default=())
    # Compiled by Starlette (groups named after the parameters) rather than by `_segments_regex`.
    _starlette: bool = field(repr=False, default=False)

    @classmethod
    def parse(cls, template: str) -> RouteTemplate:
        text = template.strip().removeprefix("~").strip("/")
        segments = [_parse_segment(raw, template) for raw in _split_segments(text, template)] if text else []
        _check_shape(segments, template)
        names = [part.name.lower() for s in segments for part in s.parts if isinstance(part, _Parameter)]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise StartError(f"route {template!r}: parameter {sorted(duplicates)[0]!r} appears twice")
        if _plain(segments):
            compiled, _, _ = compile_path("/" + text)
            plain = tuple(s.parameter for s in segments if s.parameter is not None)
            return cls(
                template=template,
                precedence=tuple(_precedence(s) for s in segments),
                # ASP.NET matches literal segments case-insensitively; Starlette's regex does not.
                _pattern=re.compile(compiled.pattern, re.IGNORECASE | re.DOTALL),
                _parameters=plain,
                _segments=tuple(segments),
                _starlette=True,
            )
        parameters: list[_Parameter] = []
        regex = _segments_regex(segments, parameters, first=True)
        return cls(
            template=template,
            precedence=tuple(_precedence(s) for s in segments),
            _pattern=re.compile(f"^{regex}$", re.IGNORECASE | re.DOTALL),
            _parameters=tuple(parameters),
            _segments=tuple(segments),
        )

    def overlaps(self, other: RouteTemplate) -> bool:
        """Whether one path could match both templates. Conservative: two parameter (or complex)
        segments are assumed to overlap; a parameter's constraints are honoured against a literal."""
        return _overlap(self._segments, other._segments)

    def match(self, path: str) -> dict[str, str] | None:
        """`path` is the percent-encoded request path below the route prefix, without leading '/'."""
        found = self._pattern.match("/" + path if self._starlette else path)
        if found is None:
            return None
        values: dict[str, str] = {}
        for index, parameter in enumerate(self._parameters):
            raw = found.group(parameter.name if self._starlette else f"p{index}")
            if raw is None or (parameter.catch_all and raw == ""):
                if parameter.default is not None:
                    values[parameter.name] = parameter.default
                continue
            value = unquote(raw)
            if not all(check(value) for check in parameter.checks):
                return None
            values[parameter.name] = value
        return values


def _plain(segments: list[_Segment]) -> bool:
    """Only literals and unconstrained, required `{name}` parameters (with Python-identifier
    names, as Starlette's groups need): what Starlette's router matches."""
    for segment in segments:
        if len(segment.parts) != 1:
            return False
        part = segment.parts[0]
        if isinstance(part, _Parameter) and (
            part.checks
            or part.optional
            or part.default is not None
            or part.catch_all
            or not part.name.isidentifier()
        ):
            return False
        if isinstance(part, str) and ("{" in part or "}" in part):
            return False
    return True


def _overlap(a: tuple[_Segment, ...], b: tuple[_Segment, ...]) -> bool:
    if not a or not b:
        return _may_be_empty(a) and _may_be_empty(b)
    first, second = a[0], b[0]
    if _is_catch_all(first) or _is_catch_all(second):
        return True  # a catch-all is the last segment and matches whatever is left, even nothing
    for one, rest, whole in ((first, a[1:], b), (second, b[1:], a)):
        if _is_optional(one) and _overlap(rest, whole):
            return True  # the optional last segment left out
    return _segment_overlap(first, second) and _overlap(a[1:], b[1:])


def _may_be_empty(segments: tuple[_Segment, ...]) -> bool:
    return all(_is_catch_all(s) or _is_optional(s) for s in segments)


def _is_catch_all(segment: _Segment) -> bool:
    return segment.parameter is not None and segment.parameter.catch_all


def _is_optional(segment: _Segment) -> bool:
    parameter = segment.parameter
    return parameter is not None and (parameter.optional or parameter.default is not None)


def _segment_overlap(first: _Segment, second: _Segment) -> bool:
    literals = [s.parts[0] for s in (first, second) if len(s.parts) == 1 and isinstance(s.parts[0], str)]
    if len(literals) == 2:
        return literals[0].lower() == literals[1].lower()
    if len(literals) == 1:
        other = second if isinstance(first.parts[0], str) and len(first.parts) == 1 else first
        parameter = other.parameter
        if parameter is None:
            return True  # a complex segment: assume it could match
        return all(check(literals[0]) for check in parameter.checks)
    return True


def _split_segments(text: str, template: str) -> list[str]:
    # '/' inside braces belongs to a constraint argument (a regex), not to the path.
    segments: list[str] = []
    current: list[str] = []
    depth = 0
    index = 0
    while index < len(text):
        pair = text[index : index + 2]
        if pair in ("{{", "}}"):
            current.append(pair)
            index += 2
            continue
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth = max(depth - 1, 0)
        if char == "/" and depth == 0:
            segments.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    segments.append("".join(current))
    if any(s == "" for s in segments):
        raise StartError(f"route {template!r}: empty path segment")
    return segments


def _parse_segment(raw: str, template: str) -> _Segment:
    parts: list[str | _Parameter] = []
    literal: list[str] = []
    index = 0
    while index < len(raw):
        char = raw[index]
        if raw.startswith("{{", index) or raw.startswith("}}", index):
            literal.append(char)
            index += 2
            continue
        if char == "}":
            raise StartError(f"route {template!r}: unmatched '}}'")
        if char != "{":
            literal.append(char)
            index += 1
            continue
        end = _closing_brace(raw, index, template)
        if literal:
            parts.append("".join(literal))
            literal = []
        elif parts and isinstance(parts[-1], _Parameter):
            raise StartError(f"route {template!r}: two parameters need a literal between them")
        parts.append(_parse_parameter(raw[index + 1 : end], template))
        index = end + 1
    if literal:
        parts.append("".join(literal))
    segment = _Segment(tuple(parts))
    parameters = [p for p in parts if isinstance(p, _Parameter)]
    if len(parts) > 1 and any(p.catch_all for p in parameters):
        raise StartError(f"route {template!r}: a catch-all parameter must be a whole segment")
    return segment


def _closing_brace(raw: str, start: int, template: str) -> int:
    index = start + 1
    while index < len(raw):
        if raw[index : index + 2] in ("{{", "}}"):
            # Escaped braces inside a parameter belong to a regex constraint, e.g. {{2}}.
            index += 2
            continue
        if raw[index] == "}":
            return index
        if raw[index] == "{":
            raise StartError(f"route {template!r}: '{{' inside a parameter must be written '{{{{'")
        index += 1
    raise StartError(f"route {template!r}: unclosed '{{'")


def _parse_parameter(body: str, template: str) -> _Parameter:
    body = body.replace("{{", "{").replace("}}", "}")
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    name_match = _NAME.match(body)
    if name_match is None:
        raise StartError(f"route {template!r}: bad parameter {{{body}}}")
    name = name_match.group(0)
    rest = body[name_match.end() :]
    checks: list[Check] = []
    while rest.startswith(":"):
        kind_match = _CONSTRAINT.match(rest, 1)
        if kind_match is None:
            raise StartError(f"route {template!r}: bad constraint in {{{body}}}")
        kind = kind_match.group(1).lower()
        rest = rest[kind_match.end() :]
        argument = None
        if rest.startswith("("):
            close = _closing_paren(rest, template)
            argument = rest[1:close]
            rest = rest[close + 1 :]
        checks.append(_constraint(kind, argument, template))
    optional = False
    default = None
    if rest.startswith("?"):
        optional, rest = True, rest[1:]
    elif rest.startswith("="):
        default, rest = rest[1:], ""
    if rest:
        raise StartError(f"route {template!r}: cannot read {{{body}}}")
    return _Parameter(name, tuple(checks), optional or default is not None, default, catch_all)


def _closing_paren(text: str, template: str) -> int:
    depth = 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
    raise StartError(f"route {template!r}: unclosed '(' in a constraint")


def _constraint(kind: str, argument: str | None, template: str) -> Check:
    def numbers() -> list[int]:
        try:
            return [int(part) for part in (argument or "").split(",")]
        except ValueError:
            raise StartError(f"route {template!r}: {kind}({argument}) needs integer arguments") from None

    simple: Mapping[str, Check] = {
        "int": lambda v: _is_integer(v, *_INT32),
        "long": lambda v: _is_integer(v, *_INT64),
        "bool": lambda v: v.lower() in ("true", "false"),
        "guid": _is_guid,
        "datetime": _is_datetime,
        "decimal": _is_number,
        "double": _is_number,
        "float": _is_number,
        "alpha": lambda v: v.isascii() and v.isalpha(),
        "required": lambda v: v != "",
    }
    if kind in simple:
        return simple[kind]
    if kind in ("min", "max", "minlength", "maxlength", "length", "range"):
        args = numbers()
        wanted = 2 if kind == "range" else (len(args) if kind == "length" else 1)
        if len(args) != wanted or (kind == "length" and len(args) not in (1, 2)):
            raise StartError(f"route {template!r}: {kind}({argument}) has the wrong number of arguments")
        if kind == "min":
            return lambda v: _is_integer(v, *_INT64) and int(v) >= args[0]
        if kind == "max":
            return lambda v: _is_integer(v, *_INT64) and int(v) <= args[0]
        if kind == "range":
            return lambda v: _is_integer(v, *_INT64) and args[0] <= int(v) <= args[1]
        if kind == "minlength":
            return lambda v: len(v) >= args[0]
        if kind == "maxlength":
            return lambda v: len(v) <= args[0]
        low, high = (args[0], args[0]) if len(args) == 1 else (args[0], args[1])
        return lambda v: low <= len(v) <= high
    if kind == "regex":
        try:
            # ASP.NET evaluates regex constraints case-insensitively and unanchored.
            pattern = re.compile(argument or "", re.IGNORECASE)
        except re.error as exc:
            raise StartError(f"route {template!r}: bad regex constraint: {exc}") from None
        return lambda v: pattern.search(v) is not None
    raise StartError(f"route {template!r}: constraint {kind!r} is not supported")


def _is_integer(value: str, low: int, high: int) -> bool:
    if not re.fullmatch(r"[+-]?\d+", value):
        return False
    return low <= int(value) <= high


def _is_number(value: str) -> bool:
    return re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", value) is not None


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _check_shape(segments: list[_Segment], template: str) -> None:
    seen_optional = False
    for position, segment in enumerate(segments):
        parameter = segment.parameter
        for part in segment.parts:
            if isinstance(part, _Parameter) and part.catch_all and position != len(segments) - 1:
                raise StartError(f"route {template!r}: a catch-all parameter must be the last segment")
            misplaced = part is not segment.parts[-1] or position != len(segments) - 1
            if isinstance(part, _Parameter) and part.optional and parameter is None and misplaced:
                raise StartError(f"route {template!r}: an optional parameter must come last")
        whole_optional = parameter is not None and (parameter.optional or parameter.catch_all)
        if seen_optional and not whole_optional:
            raise StartError(f"route {template!r}: only optional segments may follow an optional one")
        seen_optional = seen_optional or whole_optional


def _segments_regex(segments: list[_Segment], parameters: list[_Parameter], *, first: bool) -> str:
    if not segments:
        return ""
    segment, rest = segments[0], segments[1:]
    separator = "" if first else "/"
    parameter = segment.parameter
    if parameter is not None and parameter.catch_all:
        parameters.append(parameter)
        group = f"(?P<p{len(parameters) - 1}>.*)"
        return f"(?:{separator}{group})?"
    body = _segment_regex(segment, parameters)
    tail = _segments_regex(rest, parameters, first=False)
    if parameter is not None and parameter.optional:
        return f"(?:{separator}{body}{tail})?"
    return f"{separator}{body}{tail}"


def _segment_regex(segment: _Segment, parameters: list[_Parameter]) -> str:
    pieces = []
    for index, part in enumerate(segment.parts):
        if isinstance(part, str):
            pieces.append(re.escape(part))
            continue
        parameters.append(part)
        group = f"(?P<p{len(parameters) - 1}>[^/]+)"
        if part.optional and index > 0:
            # `{name}.{ext?}`: the literal before an optional trailing parameter goes with it.
            pieces[-1] = f"(?:{pieces[-1]}{group})?"
        else:
            pieces.append(group)
    return "".join(pieces)


def _precedence(segment: _Segment) -> int:
    if len(segment.parts) > 1:
        return _COMPLEX_PRECEDENCE
    part = segment.parts[0]
    if isinstance(part, str):
        return _LITERAL_PRECEDENCE
    if part.catch_all:
        return _CATCH_ALL_PRECEDENCE
    return _CONSTRAINED_PRECEDENCE if part.checks else _PARAMETER_PRECEDENCE
