"""Parse and evaluate Alertmanager label matchers such as `{severity=~"crit.*",namespace!="dev"}`.

The syntax is what Alertmanager and amtool accept (prometheus/alertmanager `pkg/labels/parse.go`
and `matcher/parse`): braces optional, values quoted with the escapes `\\"`, `\\\\` and `\\n` or
left unquoted, quoted UTF-8 label names, a trailing comma. A missing label matches as the empty
string. Regexes are fully anchored RE2: they are checked and translated once, so that Python,
SQLite (through `sqlite_regexp`) and PostgreSQL agree on what they match.
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import re2

Op = Literal["=", "!=", "=~", "!~"]
Dialect = Literal["sqlite", "postgres"]

_OPS: tuple[Op, ...] = ("=~", "!=", "!~", "=")  # longest first: "=~" before "="
_PLAIN_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_NAME_STOP = frozenset('=!~,{}"')
_UNESCAPE = {"n": "\n", '"': '"', "\\": "\\"}
_WORD_AHEAD = re.compile(r'[^\s=!~,{}"]{1,20}')
_ESCAPE_PAIR = re.compile(r"\\(.)", re.DOTALL)
_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")


class MatcherError(ValueError):
    """A filter expression or matcher is invalid; `position` is a 0-based offset into the text."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message if position is None else f"{message} (at position {position})")
        self.message = message
        self.position = position


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher; constructing it validates the name, the operator and the regex."""

    name: str
    op: Op
    value: str

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise MatcherError(f"unknown operator {_show(self.op)}: use =, !=, =~ or !~")
        if not self.name:
            raise MatcherError("label name must not be empty")
        for what, text in (("label name", self.name), ("value", self.value)):
            if _FORBIDDEN.search(text):
                raise MatcherError(f"{what} {_show(text)} contains NUL or invalid UTF-8")
        if self.op in ("=~", "!~"):
            _regex(self.value)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether the labels satisfy this matcher; a missing label counts as ""."""
        value = labels.get(self.name, "")
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        found = _regex(self.value).compiled.fullmatch(value) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        name = self.name if _PLAIN_NAME.fullmatch(self.name) else _quote(self.name)
        return f"{name}{self.op}{_quote(self.value)}"


def parse_matchers(text: str) -> list[Matcher]:
    """Parse one filter expression; several `filter` parameters are ANDed by concatenation.

    Raises MatcherError naming what is wrong and where; `{}` and "" give no matchers.
    """
    bad = _FORBIDDEN.search(text)
    if bad:
        raise MatcherError("the filter contains NUL or invalid UTF-8", bad.start())
    return _Parser(text).parse()


def matches_all(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    """Whether the labels satisfy every matcher (true for none)."""
    return all(m.matches(labels) for m in matchers)


def sql_condition(
    matchers: Sequence[Matcher], dialect: Dialect, column: str = "labels"
) -> tuple[str, list[object]]:
    """Return a SQL boolean expression for the matchers, ANDed, and its parameters.

    `column` holds the labels as a JSON object: TEXT on SQLite, which must have `sqlite_regexp`
    registered as `regexp(pattern, value)`; JSONB on PostgreSQL (placeholder `%s`).
    """
    if not _COLUMN.fullmatch(column):
        raise ValueError(f"not a column name: {column!r}")
    if dialect not in ("sqlite", "postgres"):
        raise ValueError(f"unknown SQL dialect: {dialect!r}")
    build = _sqlite_condition if dialect == "sqlite" else _postgres_condition
    parts: list[str] = []
    params: list[object] = []
    for m in matchers:
        sql, args = build(m, column)
        parts.append(sql)
        params += args
    if not parts:
        return ("1" if dialect == "sqlite" else "TRUE"), []
    return (parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"), params


def sqlite_regexp(pattern: str, value: str | None) -> bool:
    """SQLite `regexp(pattern, value)`: whether the whole value (NULL as "") matches the pattern.

    `pattern` is the matcher's own RE2 text; RE2 matches in linear time, so no pattern can make
    a query backtrack for ever.
    """
    return _re2(pattern).fullmatch(value or "") is not None


def _sqlite_condition(m: Matcher, column: str) -> tuple[str, list[object]]:
    if _PLAIN_NAME.fullmatch(m.name):
        label, args = f"coalesce(json_extract({column}, ?), '')", [f'$."{m.name}"']
    else:
        # A JSON path cannot name every key (SQLite stops at the first '"' and compares keys
        # undecoded), but json_each decodes them.
        label = f"coalesce((SELECT j.value FROM json_each({column}) AS j WHERE j.key = ?), '')"
        args = [m.name]
    if m.op == "=":
        return f"{label} = ?", [*args, m.value]
    if m.op == "!=":
        return f"{label} <> ?", [*args, m.value]
    negate = "NOT " if m.op == "!~" else ""
    return f"{negate}regexp(?, {label})", [_regex(m.value).python, *args]


def sqlite_glob_condition(m: Matcher, column: str = "labels") -> tuple[str, list[object]] | None:
    """`m` in SQLite's own GLOB when its regex is alternatives of literals with `.*` at either
    end (`crit.*`, `.*-prod|staging`), else None (use `sql_condition`).

    Selects the same rows as `sql_condition` does, without calling the Python `regexp` per
    row (each call takes the GIL back from the event loop thread). The statement's shape
    depends on the regex; names and values are still parameters.
    """
    if not _COLUMN.fullmatch(column):
        raise ValueError(f"not a column name: {column!r}")
    if m.op not in ("=~", "!~") or not _PLAIN_NAME.fullmatch(m.name):
        return None
    found = _glob_condition(m.value, f"coalesce(json_extract({column}, ?), '')", [f'$."{m.name}"'])
    if found is None:
        return None
    return ("NOT " if m.op == "!~" else "") + found[0], found[1]


def _glob_condition(
    value: str, operand: str, operand_args: list[object]
) -> tuple[str, list[object]] | None:
    """SQLite GLOBs equivalent to the fully anchored regex `value` on `operand` (never NULL),
    for alternatives of literals with `.*` at either end; None for anything else."""
    flags, body = _leading_flags(value)
    if flags not in ("", "s"):
        return None
    branches = [g for g in map(_glob, _split_alternatives(body)) if g is not None]
    if not branches or len(branches) != len(_split_alternatives(body)):
        return None
    parts: list[str] = []
    args: list[object] = []
    for glob, open_ended in branches:
        parts.append(f"{operand} GLOB ?")
        args += [*operand_args, glob]
        if open_ended and flags != "s":  # `.` does not match a newline
            parts[-1] += f" AND instr({operand}, char(10)) = 0"
            args += operand_args
    return "(" + " OR ".join(f"({p})" for p in parts) + ")", args


def _split_alternatives(body: str) -> list[str]:
    """`body` split at its top-level `|`; [] when it has groups or classes (not simple)."""
    if any(c in body for c in "()[]"):
        return []
    out, current, i = [], "", 0
    while i < len(body):
        if body[i] == "\\":
            current += body[i : i + 2]
            i += 2
            continue
        if body[i] == "|":
            out.append(current)
            current = ""
        else:
            current += body[i]
        i += 1
    out.append(current)
    return out


_GLOB_SPECIAL = {"*": "[*]", "?": "[?]", "[": "[[]"}


def _glob(branch: str) -> tuple[str, bool] | None:
    """(GLOB pattern, has `.*`) for a literal with an optional `.*` at either end, or None."""
    lead = branch.startswith(".*")
    trail = branch.endswith(".*") and not branch.endswith("\\.*") and len(branch) >= 2 + 2 * lead
    literal = branch[2 if lead else 0 : len(branch) - 2 if trail else len(branch)]
    text, i = "", 0
    while i < len(literal):
        char = literal[i]
        if char == "\\":
            escaped = literal[i + 1 : i + 2]
            if not escaped or escaped.isalnum() or escaped.isspace() or not escaped.isascii():
                return None  # \d, \n, \x41... are classes or escapes, not literals
            text, i = text + escaped, i + 2
            continue
        if char in ".^$|?*+(){}" or char == "\n":
            return None
        text, i = text + char, i + 1
    glob = "".join(_GLOB_SPECIAL.get(c, c) for c in text)
    return ("*" if lead else "") + glob + ("*" if trail else ""), lead or trail


def _postgres_condition(m: Matcher, column: str) -> tuple[str, list[object]]:
    if m.op == "=" and m.value:
        # containment can use a GIN index; "" must also match a missing label, so not for it
        return f"{column} @> %s::jsonb", [_json_object(m.name, m.value)]
    label = f"coalesce({column}->>%s::text, '')"
    if m.op in ("=", "!="):
        return f"{label} {'=' if m.op == '=' else '<>'} %s", [m.name, m.value]
    return f"{label} {'~' if m.op == '=~' else '!~'} %s", [m.name, _regex(m.value).postgres]


def _json_object(name: str, value: str) -> str:
    return json.dumps({name: value}, ensure_ascii=False, separators=(",", ":"))


class _Parser:
    """A scanner over one filter expression that keeps the offset for its errors."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> list[Matcher]:
        self._skip_space()
        opening = self.pos if self._peek() == "{" else None
        if opening is not None:
            self.pos += 1
        matchers: list[Matcher] = []
        while True:
            self._skip_space()
            char = self._peek()
            if char == "" and opening is not None:
                raise MatcherError("missing the closing '}' of the opening '{'", self.pos)
            if char == "":
                return matchers
            if char == "}":
                if opening is None:
                    raise MatcherError("unexpected '}' without an opening '{'", self.pos)
                self.pos += 1
                self._skip_space()
                if self.pos < len(self.text):
                    rest = self.text[self.pos :]
                    raise MatcherError(f"unexpected {_show(rest)} after the closing '}}'", self.pos)
                return matchers
            matchers.append(self._matcher())
            self._skip_space()
            char = self._peek()
            if char == ",":
                self.pos += 1
            elif char not in ("", "}"):
                after = "',' or '}'" if opening is not None else "',' or the end"
                raise MatcherError(
                    f"expected {after} after a matcher, found {self._found()}", self.pos
                )

    def _matcher(self) -> Matcher:
        name = self._name()
        self._skip_space()
        op = next((op for op in _OPS if self.text.startswith(op, self.pos)), None)
        if op is None:
            raise MatcherError(
                f"expected an operator (=, !=, =~ or !~) after label name {_show(name)}, "
                f"found {self._found()}",
                self.pos,
            )
        self.pos += len(op)
        self._skip_space()
        value_pos = self.pos
        value = self._value(name, op)
        try:
            return Matcher(name, op, value)
        except MatcherError as exc:
            raise MatcherError(exc.message, value_pos) from None

    def _name(self) -> str:
        start = self.pos
        if self._peek() == '"':
            name = self._quoted()
            if not name:
                raise MatcherError("label name must not be empty", start)
            return name
        while self.pos < len(self.text) and not _ends_name(self.text[self.pos]):
            self.pos += 1
        name = self.text[start : self.pos]
        if not name:
            raise MatcherError(f"expected a label name, found {self._found()}", start)
        if not _PLAIN_NAME.fullmatch(name):
            raise MatcherError(
                f"invalid label name {_show(name)}: unquoted names must match "
                "[a-zA-Z_:][a-zA-Z0-9_:]*, write other names in double quotes",
                start,
            )
        return name

    def _value(self, name: str, op: str) -> str:
        char = self._peek()
        if char == '"':
            return self._quoted()
        if char in ("", ",", "}"):
            raise MatcherError(
                f"expected a value after {_show(name + op)}, found {self._found()} "
                '(write "" for the empty string)',
                self.pos,
            )
        # Unquoted, as the classic parser allows: up to the next ',' or '}', spaces trimmed.
        start, text = self.pos, self.text
        while self.pos < len(text) and text[self.pos] not in ",}":
            if text[self.pos] == "\\" and text[self.pos + 1 : self.pos + 2] in _UNESCAPE:
                self.pos += 2
                continue
            if text[self.pos] == '"':
                raise MatcherError(
                    "unescaped '\"' in an unquoted value: quote the value and write \\\" inside",
                    self.pos,
                )
            self.pos += 1
        return _unescape(text[start : self.pos].rstrip())

    def _quoted(self) -> str:
        start, text = self.pos, self.text
        end = start + 1
        while end < len(text) and text[end] != '"':
            end += 2 if text[end] == "\\" else 1
        if end >= len(text):
            raise MatcherError(
                f'unterminated quoted string {_show(text[start:])}: missing "', start
            )
        self.pos = end + 1
        return _unescape(text[start + 1 : end])

    def _skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def _found(self) -> str:
        rest = self.text[self.pos :]
        if not rest:
            return "the end of the filter"
        word = _WORD_AHEAD.match(rest)
        return _show(word.group() if word else rest[0])


def _ends_name(char: str) -> bool:
    return char.isspace() or char in _NAME_STOP


def _unescape(raw: str) -> str:
    """Undo \\" \\\\ \\n; any other backslash is literal, as in Alertmanager's classic parser."""
    return _ESCAPE_PAIR.sub(lambda m: _UNESCAPE.get(m[1], m[0]), raw)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _show(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "…")


# --- regular expressions --------------------------------------------------------------------
# Alertmanager compiles `^(?:value)$` with Go's RE2. The value is translated into a pattern
# that means the same to Python's `re` and PostgreSQL's ARE: the RE2 classes are spelled out
# as ASCII sets, `.` excludes only "\n", `$` is the end of the text; what RE2 rejects, or what
# the three cannot agree on, is rejected here.


class _Regex(NamedTuple):
    compiled: Any  # re2's compiled pattern of the matcher's own text (linear-time matching)
    python: str  # the matcher's own RE2 text, unanchored, for `sqlite_regexp`
    postgres: str  # anchored, for `~`


class _Rejected(Exception):
    pass


_WORD = "0-9A-Za-z_"
_SPACE = r"\t\n\f\r "
_IN_CLASS = {"d": "0-9", "s": _SPACE, "w": _WORD}
_PERL = {
    "d": "[0-9]",
    "D": "[^0-9]",
    "s": f"[{_SPACE}]",
    "S": f"[^{_SPACE}]",
    "w": f"[{_WORD}]",
    "W": f"[^{_WORD}]",
    "b": f"(?:(?<=[{_WORD}])(?![{_WORD}])|(?<![{_WORD}])(?=[{_WORD}]))",
    "B": f"(?:(?<=[{_WORD}])(?=[{_WORD}])|(?<![{_WORD}])(?![{_WORD}]))",
    "A": r"\A",
    "z": r"\Z",
}
_POSIX = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": r"\x01-\x7f",  # NUL cannot occur in a value PostgreSQL stores
    "blank": r"\t ",
    "cntrl": r"\x01-\x1f\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": r"!-/:-@\[-`{-~",
    "space": r"\t\n\v\f\r ",
    "upper": "A-Z",
    "word": _WORD,
    "xdigit": "0-9A-Fa-f",
}
_LEADING_FLAGS = re.compile(r"\(\?([A-Za-z-]+)\)")
_POSIX_CLASS = re.compile(r"\[:(\^?)([a-z]*):\]")
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_NAMED_GROUP = re.compile(r"\(\?P?<[A-Za-z0-9_]+>")
_HEX = re.compile(r"\{([0-9A-Fa-f]{1,8})\}|[0-9A-Fa-f]{2}")
_GROUPS = {
    "(?=": "lookahead",
    "(?!": "lookahead",
    "(?<=": "lookbehind",
    "(?<!": "lookbehind",
    "(?P=": "backreference",
    "(?>": "atomic group",
    "(?#": "comment",
    "(?(": "conditional",
}


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@functools.lru_cache(maxsize=1024)
def _re2(pattern: str) -> Any:
    return re2.compile(pattern)


@functools.lru_cache(maxsize=1024)
def _regex(value: str) -> _Regex:
    try:
        flags, body = _leading_flags(value)
        translated = _translate(body, dotall="s" in flags)
        prefix = f"(?{flags})" if flags else ""
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "possible nested set" and the like: refuse
            compiled = _compile(prefix + translated)
    except (_Rejected, re.error, Warning) as exc:
        reason = exc.msg if isinstance(exc, re.error) else str(exc)
        raise MatcherError(f"invalid regular expression {_show(value)}: {reason}") from None
    try:
        native = _re2(value)
    except re2.error as exc:
        raise MatcherError(f"invalid regular expression {_show(value)}: {exc}") from None
    # Python's `re` validated and translated the pattern (for PostgreSQL); matching here uses
    # RE2 itself, as Alertmanager does, in linear time.
    del compiled
    return _Regex(native, value, f"{prefix}^(?:{translated})$")


def _leading_flags(value: str) -> tuple[str, str]:
    # PostgreSQL takes flags only at the very start, so that is the one place they may be.
    found = _LEADING_FLAGS.match(value)
    if not found:
        return "", value
    if not set(found[1]) <= {"i", "s"}:
        raise _Rejected(f"flags (?{found[1]}) are not supported: only a leading (?i) or (?s)")
    return "".join(sorted(set(found[1]))), value[found.end() :]


def _translate(body: str, *, dotall: bool) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        quantifier = False
        if char == "\\":
            piece, i = _escape(body, i, in_class=False)
        elif char == "[":
            piece, i = _char_class(body, i)
        elif char == "(":
            piece, i = _group(body, i)
        elif char == ".":
            piece, i = ("." if dotall else r"[^\n]"), i + 1
        elif char == "$":
            piece, i = r"\Z", i + 1
        elif char == "{" and (repeat := _REPEAT.match(body, i)):
            low, high = int(repeat[1]), int(repeat[3] or repeat[1])
            if max(low, high) > 1000:
                raise _Rejected(f"repeat count {repeat.group()} exceeds 1000")
            piece, i, quantifier = repeat.group(), repeat.end(), True
        elif char in "{}":
            piece, i = "\\" + char, i + 1  # literal in RE2 when not a repeat
        else:
            piece, i, quantifier = char, i + 1, char in "*+?"
        out.append(piece)
        if quantifier:
            if body[i : i + 1] == "?":
                out.append("?")
                i += 1
            if body[i : i + 1] in ("*", "+", "?") or _REPEAT.match(body, i):
                raise _Rejected(f"invalid nested repetition operator {body[i - 1 : i + 1]!r}")
    return "".join(out)


def _group(body: str, i: int) -> tuple[str, int]:
    if not body.startswith("(?", i):
        return "(", i + 1
    if body.startswith("(?:", i):
        return "(?:", i + 3
    named = _NAMED_GROUP.match(body, i)
    if named:
        return "(", named.end()  # PostgreSQL has no named groups; matching ignores captures
    for start, what in _GROUPS.items():
        if body.startswith(start, i):
            raise _Rejected(f"{what} {start}…) is not supported by RE2")
    if _LEADING_FLAGS.match(body, i) or re.match(r"\(\?[A-Za-z-]+:", body[i:]):
        raise _Rejected("flags are only supported as a leading (?i) or (?s)")
    raise _Rejected(f"invalid group syntax {body[i : i + 3]!r}")


def _char_class(body: str, i: int) -> tuple[str, int]:
    out = ["["]
    i += 1
    if body[i : i + 1] == "^":
        out.append("^")
        i += 1
    first = True
    while i < len(body):
        char = body[i]
        if char == "]" and not first:
            out.append("]")
            return "".join(out), i + 1
        first = False
        if char == "[" and (posix := _POSIX_CLASS.match(body, i)):
            if posix[1] or posix[2] not in _POSIX:
                raise _Rejected(f"unsupported character class {posix.group()}")
            piece, i = _POSIX[posix[2]], posix.end()
        elif char == "\\":
            piece, i = _escape(body, i, in_class=True)
        else:
            piece, i = (_literal(char) if char in "[]&~|" else char), i + 1
        out.append(piece)
    raise _Rejected("missing closing ]")


def _escape(body: str, i: int, *, in_class: bool) -> tuple[str, int]:
    if i + 1 >= len(body):
        raise _Rejected("trailing backslash")
    char, end = body[i + 1], i + 2
    if in_class and char in _IN_CLASS:
        return _IN_CLASS[char], end
    if not in_class and char in _PERL:
        return _PERL[char], end
    if char in "afnrtv":
        return "\\" + char, end
    if char == "x":
        code = _HEX.match(body, end)
        point = int(code[1] or code.group(), 16) if code else -1
        if not (0 <= point <= 0x10FFFF) or 0xD800 <= point <= 0xDFFF:
            raise _Rejected(f"invalid escape {body[i : i + 4]!r}")
        return _literal(chr(point)), code.end() if code else end
    if char == "Q" and not in_class:
        stop = body.find("\\E", end)
        quoted = body[end:] if stop < 0 else body[end:stop]
        return "".join(map(_literal, quoted)), len(body) if stop < 0 else stop + 2
    if char == "Z":
        raise _Rejected(r"\Z is not RE2 syntax: use \z for the end of the text")
    if char.isdigit():
        raise _Rejected(f"backreferences and octal escapes (\\{char}) are not supported by RE2")
    if char.isascii() and char.isalnum():
        where = " inside [...]" if in_class else ""
        raise _Rejected(f"escape \\{char}{where} is not supported")
    return _literal(char), end


def _literal(char: str) -> str:
    if char == "\x00":
        raise _Rejected("NUL is not supported")
    if char.isascii() and not char.isalnum() and char.isprintable() and char not in " _":
        return "\\" + char
    return char
