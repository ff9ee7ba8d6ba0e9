"""Alertmanager label matchers: parsing, matching, and the SQL that must agree with matching."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, suppress

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_history.domain.matchers import (
    Matcher,
    MatcherError,
    matches_all,
    parse_matchers,
    sql_condition,
    sqlite_glob_condition,
    sqlite_regexp,
)


def m(name: str, op: str, value: str) -> Matcher:
    return Matcher(name, op, value)  # type: ignore[arg-type]


# --- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["=", "!=", "=~", "!~"])
def test_every_operator_parses(op: str) -> None:
    assert parse_matchers(f'{{severity{op}"crit"}}') == [m("severity", op, "crit")]


def test_the_brief_example_parses_into_two_matchers() -> None:
    assert parse_matchers('{severity=~"crit.*",namespace!="dev"}') == [
        m("severity", "=~", "crit.*"),
        m("namespace", "!=", "dev"),
    ]


def test_braces_are_optional() -> None:
    assert parse_matchers('a="b",c!="d"') == parse_matchers('{a="b",c!="d"}')


def test_values_may_be_unquoted() -> None:
    assert parse_matchers("a=b, c=~crit.*, d!=x y") == [
        m("a", "=", "b"),
        m("c", "=~", "crit.*"),
        m("d", "!=", "x y"),
    ]


def test_quoted_values_keep_commas_braces_and_spaces() -> None:
    assert parse_matchers('{a=" x, {y} "}') == [m("a", "=", " x, {y} ")]


def test_quoted_values_unescape_quote_backslash_and_newline() -> None:
    assert parse_matchers(r'a="say \"hi\"\\\n"') == [m("a", "=", 'say "hi"\\\n')]


def test_other_backslashes_are_literal_so_regexes_need_no_doubling() -> None:
    assert parse_matchers(r'instance=~"10\.0\.\d+:9100"') == [
        m("instance", "=~", r"10\.0\.\d+:9100")
    ]


def test_unquoted_values_unescape_like_quoted_ones() -> None:
    assert parse_matchers(r"a=x\"y\\z\n") == [m("a", "=", 'x"y\\z\n')]


def test_whitespace_is_tolerated_between_every_token() -> None:
    assert parse_matchers(' \n{ a = "b" ,\tc !~ "d" , } ') == [m("a", "=", "b"), m("c", "!~", "d")]


@pytest.mark.parametrize("text", ["a=b,", "{a=b,}", "{a=b , }"])
def test_a_trailing_comma_is_allowed(text: str) -> None:
    assert parse_matchers(text) == [m("a", "=", "b")]


@pytest.mark.parametrize("text", ["", "   ", "{}", "{ }", " { } "])
def test_an_empty_filter_has_no_matchers_and_matches_everything(text: str) -> None:
    assert parse_matchers(text) == []
    assert matches_all(parse_matchers(text), {"a": "b"})


def test_quoted_label_names_may_hold_any_utf8() -> None:
    assert parse_matchers('{"foo bar"="x", "🙂"!=y}') == [
        m("foo bar", "=", "x"),
        m("🙂", "!=", "y"),
    ]


def test_label_names_may_contain_colons_like_in_alertmanager() -> None:
    assert parse_matchers("job:rate=x") == [m("job:rate", "=", "x")]


def test_several_filter_parameters_and_together() -> None:
    matchers = [*parse_matchers('severity="critical"'), *parse_matchers('namespace!="dev"')]
    assert matches_all(matchers, {"severity": "critical", "namespace": "prod"})
    assert not matches_all(matchers, {"severity": "critical", "namespace": "dev"})


def test_a_matcher_prints_as_text_that_parses_back() -> None:
    matcher = m("foo bar", "=~", 'a"b\\.c\n')
    assert str(matcher) == r'"foo bar"=~"a\"b\\.c\n"'
    assert parse_matchers(str(matcher)) == [matcher]


# Examples from Alertmanager's own tests: prometheus/alertmanager pkg/labels/parse_test.go
# (TestMatchers, the classic parser) and matcher/parse/parse_test.go (TestMatchers, the UTF-8
# parser). Skipped: the UTF-8 parser's Go escapes (\t, \xf0, \U0001f642), since here only \" \\
# and \n are escapes as in the classic parser, which Alertmanager's default mode prefers.
ALERTMANAGER_EXAMPLES: list[tuple[str, list[tuple[str, str, str]]]] = [
    ('{foo="bar"}', [("foo", "=", "bar")]),
    ('{foo=~"bar.*"}', [("foo", "=~", "bar.*")]),
    ('{foo!="bar"}', [("foo", "!=", "bar")]),
    ('{foo!~"bar.*"}', [("foo", "!~", "bar.*")]),
    ('{foo="bar", baz!="quux"}', [("foo", "=", "bar"), ("baz", "!=", "quux")]),
    ('{foo="bar", baz!~"quux.*"}', [("foo", "=", "bar"), ("baz", "!~", "quux.*")]),
    (
        '{foo="bar",baz!~".*quux", derp="wat"}',
        [("foo", "=", "bar"), ("baz", "!~", ".*quux"), ("derp", "=", "wat")],
    ),
    (
        '{foo="bar", baz!="quux", derp="wat"}',
        [("foo", "=", "bar"), ("baz", "!=", "quux"), ("derp", "=", "wat")],
    ),
    (
        '{foo="bar", baz!~".*quux.*", derp="wat"}',
        [("foo", "=", "bar"), ("baz", "!~", ".*quux.*"), ("derp", "=", "wat")],
    ),
    (
        '{foo="bar", instance=~"some-api.*"}',
        [("foo", "=", "bar"), ("instance", "=~", "some-api.*")],
    ),
    ('{foo=""}', [("foo", "=", "")]),
    ('{foo="bar,quux", job="job1"}', [("foo", "=", "bar,quux"), ("job", "=", "job1")]),
    ('{foo = "bar", dings != "bums", }', [("foo", "=", "bar"), ("dings", "!=", "bums")]),
    ("foo=bar,dings!=bums", [("foo", "=", "bar"), ("dings", "!=", "bums")]),
    (
        r"""{quote="She said: \"Hi, ladies! That's gender-neutral…\""}""",
        [("quote", "=", 'She said: "Hi, ladies! That\'s gender-neutral…"')],
    ),
    ('statuscode=~"5.."', [("statuscode", "=~", "5..")]),
    ("tricky=~~~", [("tricky", "=~", "~~")]),
    (r"trickier==\\=\=\"", [("trickier", "=", r'=\=\="')]),
    (
        r'contains_quote != "\"" , contains_comma !~ "foo,bar" , ',
        [("contains_quote", "!=", '"'), ("contains_comma", "!~", "foo,bar")],
    ),
    # matcher/parse/parse_test.go
    ("{foo=bar,}", [("foo", "=", "bar")]),
    ("{foo=~[a-z]+}", [("foo", "=~", "[a-z]+")]),
    ("{foo!~[a-z]+}", [("foo", "!~", "[a-z]+")]),
    ("{foo=🙂bar}", [("foo", "=", "🙂bar")]),
    ("foo=bar,", [("foo", "=", "bar")]),
    ('{"foo"="bar",}', [("foo", "=", "bar")]),
    ('{"foo"=~"[a-z]+"}', [("foo", "=~", "[a-z]+")]),
    ('{"foo"="🙂"}', [("foo", "=", "🙂")]),
    (r'{"foo"="bar\n"}', [("foo", "=", "bar\n")]),
    (r'{"foo"="\"bar\""}', [("foo", "=", '"bar"')]),
    (r'{"foo"="bar\\"}', [("foo", "=", "bar\\")]),
    ('"foo"="bar",', [("foo", "=", "bar")]),
    ('{foo="bar",bar!="baz"}', [("foo", "=", "bar"), ("bar", "!=", "baz")]),
]


@pytest.mark.parametrize(("text", "expected"), ALERTMANAGER_EXAMPLES)
def test_alertmanager_examples_parse_the_same(
    text: str, expected: list[tuple[str, str, str]]
) -> None:
    assert parse_matchers(text) == [m(*triple) for triple in expected]


# The same files' error cases. Alertmanager's classic fallback accepts `foo=bar}` and `{foo=bar`;
# like its UTF-8 parser, this one refuses unbalanced braces.
ALERTMANAGER_ERRORS = [
    "job=",
    'job="value',
    'job=value"',
    r'trickier==\\=\=\""',
    'contains_unescaped_quote = foo"bar',
    '{invalid-name = "valid label"}',
    '{foo=~"invalid[regexp"}',
    r'"{foo=\"bar"}',
    r'"foo=\"bar"',
    r'"foo=\"bar\""',
    r'"foo=\"bar\"',
    r'"{foo=\"bar\"}"',
    '"foo="bar""',
    ",",
    "{,}",
    "{",
    "}",
    "foo=bar}",
    "{foo=bar",
    '{foo=:"bar"}',
]


@pytest.mark.parametrize("text", ALERTMANAGER_ERRORS)
def test_alertmanager_error_examples_are_refused(text: str) -> None:
    with pytest.raises(MatcherError):
        parse_matchers(text)


# --- errors ---------------------------------------------------------------------------------


def errors(text: str) -> MatcherError:
    with pytest.raises(MatcherError) as info:
        parse_matchers(text)
    assert isinstance(info.value, ValueError)
    return info.value


def test_a_missing_operator_names_the_label_and_what_was_found() -> None:
    err = errors('{severity "critical"}')
    assert err.position == 10
    assert str(err) == (
        "expected an operator (=, !=, =~ or !~) after label name 'severity', "
        "found '\"' (at position 10)"
    )
    assert "found the end of the filter" in str(errors("severity"))


def test_an_unterminated_quote_points_at_its_opening_quote() -> None:
    err = errors('{severity=~"crit.*}')
    assert err.position == 11
    assert "unterminated quoted string '\"crit.*}'" in str(err)


def test_a_bad_label_name_is_named_with_the_rule() -> None:
    err = errors('{invalid-name="x"}')
    assert err.position == 1
    assert "invalid label name 'invalid-name'" in str(err)
    assert "double quotes" in str(err)
    assert errors('1abc="x"').position == 0
    assert "must not be empty" in str(errors('""="x"'))


def test_an_invalid_regex_is_named_with_the_reason() -> None:
    err = errors('a="b", c=~"crit[" ')
    assert err.position == 10
    assert str(err) == ("invalid regular expression 'crit[': missing closing ] (at position 10)")
    assert "missing ), unterminated subpattern" in str(errors('a=~"(x"'))


def test_garbage_after_the_closing_brace_is_refused() -> None:
    err = errors('{a="b"} junk')
    assert err.position == 8
    assert "unexpected 'junk' after the closing '}'" in str(err)


def test_garbage_after_a_quoted_value_is_refused() -> None:
    assert "expected ',' or '}' after a matcher, found 'c'" in str(errors('{a="b" c="d"}'))


def test_a_missing_value_suggests_the_empty_string() -> None:
    assert 'write "" for the empty string' in str(errors("{job=}"))


def test_an_unbalanced_brace_is_refused() -> None:
    assert "missing the closing '}'" in str(errors('{a="b"'))
    assert "without an opening '{'" in str(errors('a="b"}'))


@pytest.mark.parametrize("text", ['a="\x00"', "a=\x00", '"\x00"="b"', 'a="\ud800"'])
def test_nul_and_invalid_utf8_are_refused(text: str) -> None:
    errors(text)


@pytest.mark.parametrize(
    ("name", "op", "value"), [("", "=", "x"), ("a", "==", "x"), ("a", "=~", "(")]
)
def test_constructing_an_invalid_matcher_raises(name: str, op: str, value: str) -> None:
    with pytest.raises(MatcherError):
        m(name, op, value)


# --- matching -------------------------------------------------------------------------------


def test_regexes_are_fully_anchored() -> None:
    assert not m("severity", "=~", "crit").matches({"severity": "critical"})
    assert m("severity", "=~", "crit.*").matches({"severity": "critical"})
    assert not m("severity", "=~", "ritical").matches({"severity": "critical"})
    assert m("severity", "=~", "warning|crit").matches({"severity": "crit"})
    assert m("severity", "!~", "crit").matches({"severity": "critical"})


@pytest.mark.parametrize(
    ("op", "value", "matches_missing"),
    [
        ("=", "", True),
        ("=", "x", False),
        ("!=", "", False),
        ("!=", "x", True),
        ("=~", ".*", True),
        ("=~", ".+", False),
        ("!~", ".+", True),
        ("!~", ".*", False),
    ],
)
def test_a_missing_label_matches_as_the_empty_string(
    op: str, value: str, matches_missing: bool
) -> None:
    matcher = m("a", op, value)
    assert matcher.matches({"b": "x"}) is matches_missing
    assert matcher.matches({"a": ""}) is matches_missing


def test_a_leading_case_insensitive_flag_is_honoured() -> None:
    assert m("a", "=~", "(?i)CRIT.*").matches({"a": "Critical"})


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        (r"\d+", "٣", False),  # RE2's \d, \w and \s are ASCII
        (r"\w+", "é", False),
        (".", "\n", False),  # . excludes newline unless (?s)
        ("(?s).", "\n", True),
        ("x$", "x\n", False),  # $ is the end of the text, not before a final newline
        ("[[:alpha:]]+", "abc", True),  # POSIX classes, which Python's re lacks
        ("[[:digit:]]", "a", False),
        (r"\Qa.b\E", "a.b", True),
        (r"\Qa.b\E", "axb", False),
        (r"x\z", "x", True),
        (r"\x41\x{1F642}", "A🙂", True),
        ("a{,2}", "a{,2}", True),  # not a repeat in RE2, so literal
        (r"\bcrit\b", "crit", True),
        ("(?P<level>crit|warn)", "warn", True),
    ],
)
def test_regexes_follow_re2_where_python_differs(pattern: str, value: str, expected: bool) -> None:
    assert m("a", "=~", pattern).matches({"a": value}) is expected


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(a)\1", "backreferences"),
        ("(?=a)a", "lookahead"),
        ("(?<!a)b", "lookbehind"),
        ("(?P<x>a)(?P=x)", "backreference"),
        ("a*+", "nested repetition"),
        ("(?>a)", "atomic group"),
        (r"a\Z", r"use \z"),
        ("a(?i)b", "leading (?i)"),
        ("(?m)a", "only a leading (?i) or (?s)"),
        (r"\p{L}", r"escape \p"),
        ("[[:^alpha:]]", "unsupported character class"),
    ],
)
def test_python_only_regex_syntax_is_refused(pattern: str, reason: str) -> None:
    with pytest.raises(MatcherError, match=re.escape(reason)):
        m("a", "=~", pattern)


# --- SQL ------------------------------------------------------------------------------------


def test_sqlite_regexp_is_anchored_and_treats_null_as_empty() -> None:
    assert sqlite_regexp("crit.*", "critical")
    assert not sqlite_regexp("crit", "critical")
    assert sqlite_regexp("", None)
    assert not sqlite_regexp(".+", None)


def test_no_matchers_give_a_true_condition() -> None:
    assert sql_condition([], "sqlite") == ("1", [])
    assert sql_condition([], "postgres") == ("TRUE", [])


def test_sqlite_condition_reads_plain_names_with_json_extract() -> None:
    assert sql_condition([m("severity", "!=", "x")], "sqlite") == (
        "coalesce(json_extract(labels, ?), '') <> ?",
        ['$."severity"', "x"],
    )


def test_sqlite_condition_passes_the_matchers_own_re2_pattern_first_to_regexp() -> None:
    assert sql_condition([m("severity", "!~", "crit.*")], "sqlite", "e.labels") == (
        "NOT regexp(?, coalesce(json_extract(e.labels, ?), ''))",
        ["crit.*", '$."severity"'],
    )


def test_a_catastrophic_pattern_matches_in_linear_time() -> None:
    # Python's backtracking `re` needs minutes for this; RE2 answers at once.
    matcher = m("x", "=~", "(a+)+b")
    assert not matcher.matches({"x": "a" * 5_000})
    assert not sqlite_regexp("(a+)+b", "a" * 5_000)


def test_sqlite_condition_finds_other_names_with_json_each() -> None:
    assert sql_condition([m('a "b"', "=", "x")], "sqlite") == (
        "coalesce((SELECT j.value FROM json_each(labels) AS j WHERE j.key = ?), '') = ?",
        ['a "b"', "x"],
    )


def test_postgres_equality_uses_jsonb_containment() -> None:
    assert sql_condition([m("severity", "=", "critical")], "postgres") == (
        "labels @> %s::jsonb",
        ['{"severity":"critical"}'],
    )


def test_postgres_equality_with_empty_also_matches_a_missing_label() -> None:
    assert sql_condition([m("a", "=", "")], "postgres") == (
        "coalesce(labels->>%s::text, '') = %s",
        ["a", ""],
    )


def test_postgres_conditions_for_the_other_operators() -> None:
    assert sql_condition([m("a", "!=", "x")], "postgres") == (
        "coalesce(labels->>%s::text, '') <> %s",
        ["a", "x"],
    )
    assert sql_condition([m("a", "=~", "crit.*")], "postgres") == (
        "coalesce(labels->>%s::text, '') ~ %s",
        ["a", r"^(?:crit[^\n]*)$"],
    )
    assert sql_condition([m("a", "!~", "(?i)x|y")], "postgres") == (
        "coalesce(labels->>%s::text, '') !~ %s",
        ["a", "(?i)^(?:x|y)$"],
    )


def test_several_conditions_are_anded_in_parentheses() -> None:
    sql, params = sql_condition(parse_matchers('severity="critical",namespace!="dev"'), "postgres")
    assert sql == "(labels @> %s::jsonb AND coalesce(labels->>%s::text, '') <> %s)"
    assert params == ['{"severity":"critical"}', "namespace", "dev"]


def test_a_column_that_is_not_an_identifier_is_refused() -> None:
    with pytest.raises(ValueError, match="column"):
        sql_condition([], "sqlite", "labels; DROP TABLE x")


# --- properties -----------------------------------------------------------------------------

NAMES = st.sampled_from(
    ["alertname", "severity", "a", "a:b", "with space", 'quo"te', "back\\slash", "dot.ted", "ünï"]
)
VALUES = st.one_of(
    st.sampled_from(["", "critical", "crit", "warning", "dev", "a.b"]),
    st.text(st.sampled_from(list('abcCRIT .\n"\\é😀_-09')), max_size=6),
)
PATTERNS = st.one_of(
    st.sampled_from(
        [
            "",
            ".*",
            ".+",
            "crit.*",
            "crit",
            "(?i)CRIT.*",
            "a|b",
            "[a-c]+",
            r"\d+",
            "[[:alpha:]]+",
            "x$",
            "^c.*",
            ".",
            "(?s).*",
            r"\w+",
            r"\bcrit\b",
            r"\Qa.b\E",
            r"\x63rit",
            "[^a]*",
            r"\s.*",
            "(?i)é",
            "😀?",
            '.*".*',
            r".*\\.*",
            "[\n]",
        ]
    ),
    VALUES.map(re.escape),
)
MATCHERS = st.one_of(
    st.builds(Matcher, NAMES, st.sampled_from(["=", "!="]), VALUES),
    st.builds(Matcher, NAMES, st.sampled_from(["=~", "!~"]), PATTERNS),
)
LABEL_SETS = st.dictionaries(NAMES, VALUES, max_size=4)
ENCODERS: list[Callable[[dict[str, str]], str]] = [
    lambda labels: json.dumps(labels),
    lambda labels: json.dumps(labels, ensure_ascii=False),
    lambda labels: msgspec.json.encode(labels, order="sorted").decode(),  # as storage does
]


@pytest.fixture(scope="module")
def labels_db() -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(":memory:")) as db:
        db.create_function("regexp", 2, sqlite_regexp, deterministic=True)
        db.execute("CREATE TABLE alerts (id INTEGER PRIMARY KEY, labels TEXT NOT NULL)")
        yield db


@given(
    rows=st.lists(LABEL_SETS, max_size=8),
    matchers=st.lists(MATCHERS, max_size=3),
    encode=st.sampled_from(ENCODERS),
)
def test_sqlite_condition_selects_exactly_the_rows_matcher_matches(
    labels_db: sqlite3.Connection,
    rows: list[dict[str, str]],
    matchers: list[Matcher],
    encode: Callable[[dict[str, str]], str],
) -> None:
    labels_db.execute("DELETE FROM alerts")
    labels_db.executemany(
        "INSERT INTO alerts (id, labels) VALUES (?, ?)",
        [(i, encode(labels)) for i, labels in enumerate(rows)],
    )
    where, params = sql_condition(matchers, "sqlite")
    selected = {i for (i,) in labels_db.execute(f"SELECT id FROM alerts WHERE {where}", params)}
    assert selected == {i for i, labels in enumerate(rows) if matches_all(matchers, labels)}


GLOB_PATTERNS = st.one_of(
    PATTERNS,
    st.sampled_from(
        ["crit.*", ".*crit", ".*a.*", "critical|warning", "a|.*b|", r"c\.d", r"\*x.*", "[?]", "é.*"]
    ),
    st.lists(VALUES.map(re.escape), min_size=1, max_size=3).map("|".join),
    VALUES.map(lambda v: ".*" + re.escape(v) + ".*"),
)


@given(
    rows=st.lists(LABEL_SETS, max_size=8),
    matcher=st.builds(Matcher, NAMES, st.sampled_from(["=~", "!~"]), GLOB_PATTERNS),
    encode=st.sampled_from(ENCODERS),
)
def test_sqlite_glob_condition_selects_exactly_the_rows_matcher_matches(
    labels_db: sqlite3.Connection,
    rows: list[dict[str, str]],
    matcher: Matcher,
    encode: Callable[[dict[str, str]], str],
) -> None:
    globbed = sqlite_glob_condition(matcher)
    if globbed is None:
        return
    where, params = globbed
    assert where.count("?") == len(params) and "regexp" not in where
    labels_db.execute("DELETE FROM alerts")
    labels_db.executemany(
        "INSERT INTO alerts (id, labels) VALUES (?, ?)",
        [(i, encode(labels)) for i, labels in enumerate(rows)],
    )
    selected = {i for (i,) in labels_db.execute(f"SELECT id FROM alerts WHERE {where}", params)}
    assert selected == {i for i, labels in enumerate(rows) if matcher.matches(labels)}


@pytest.mark.parametrize(
    ("value", "globs"),
    [
        ("crit.*", ["crit*"]),
        (".*-prod|staging", ["*-prod", "staging"]),
        (r"a\*b", ["a[*]b"]),
        ("(?s)x.*", ["x*"]),
    ],
)
def test_sqlite_glob_condition_takes_literals_with_open_ends(value: str, globs: list[str]) -> None:
    found = sqlite_glob_condition(m("severity", "=~", value))
    assert found is not None
    assert [p for p in found[1] if not str(p).startswith("$.")] == globs


@pytest.mark.parametrize(
    "matcher",
    [
        m("severity", "=~", "a.b"),
        m("severity", "=~", "(?i)crit.*"),
        m("severity", "=~", "[a-c]+"),
        m("severity", "=~", r"\d+"),
        m("severity", "=", "crit"),
        m("with space", "=~", "crit.*"),
    ],
)
def test_sqlite_glob_condition_leaves_everything_else_to_regexp(matcher: Matcher) -> None:
    assert sqlite_glob_condition(matcher) is None


def skeleton(matcher: Matcher) -> Matcher:
    plain = re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", matcher.name)
    return m("n" if plain else "n n", matcher.op, "v" if matcher.value else "")


@given(st.lists(MATCHERS, max_size=4), st.sampled_from(["sqlite", "postgres"]))
def test_sql_text_never_holds_label_names_or_values(matchers: list[Matcher], dialect: str) -> None:
    sql, params = sql_condition(matchers, dialect)  # type: ignore[arg-type]
    assert sql.count("?" if dialect == "sqlite" else "%s") == len(params)
    assert sql == sql_condition(list(map(skeleton, matchers)), dialect)[0]  # type: ignore[arg-type]


TEXTS = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1)


@given(
    st.lists(
        st.one_of(
            st.builds(Matcher, TEXTS, st.sampled_from(["=", "!="]), TEXTS | st.just("")),
            st.builds(Matcher, TEXTS, st.sampled_from(["=~", "!~"]), PATTERNS),
        ),
        max_size=4,
    ),
    st.booleans(),
)
def test_printed_matchers_parse_back_to_themselves(matchers: list[Matcher], braced: bool) -> None:
    text = ", ".join(map(str, matchers))
    assert parse_matchers("{" + text + "}" if braced else text) == matchers


@given(st.text(st.one_of(st.sampled_from(list('{}",=!~ \\\nab.*[](')), st.characters())))
def test_any_text_either_parses_or_raises_matcher_error(text: str) -> None:
    with suppress(MatcherError):
        parse_matchers(text)


@given(st.text(st.sampled_from(list(r"ab()[]{}^$.*+?|\:-=!<>PQEdzZxX0123,is"))))
def test_any_regex_either_compiles_or_raises_matcher_error(pattern: str) -> None:
    try:
        matcher = m("a", "=~", pattern)
    except MatcherError:
        return
    matcher.matches({"a": "ab"})
    sql_condition([matcher], "postgres")
