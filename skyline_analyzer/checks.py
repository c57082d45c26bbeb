"""The building blocks of setting rules: a :class:`Rule` per setting, checks that yield problems, and
bounded formatting for the messages.

A check is a function of a value (already of an accepted type) that yields one :class:`Problem` per broken
rule. A problem names the rule; :func:`render` turns it into a message, quoting the value only bounded
and escaped (:func:`describe`) and never when it is a secret. :mod:`skyline_analyzer.schema` uses these
to describe every setting; docs/settings.md lists the rules.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from skyline_analyzer import excerpt

#: Longest quoted value or escaped text in a message, in characters.
QUOTE_LIMIT = 80
#: Largest whole number a count, size or duration may be (they reach C ints and Redis TTLs).
INT_MAX = 2**31 - 1
#: Longest unix socket path in bytes (the kernel's sun_path holds 108, with the terminating NUL).
UNIX_PATH_MAX = 107
#: Longest path a path setting may hold (Linux PATH_MAX).
PATH_MAX = 4096

_SECRET_KEY_WORDS = ("password", "token", "key", "secret")
_URL_WITH_CREDENTIALS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]*@")
_CARBON_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\Z")


@dataclass(frozen=True)
class Problem:
    """One broken rule. Rendered ``<setting><where> must be <rule>, got <value>``, or with ``note`` instead.

    ``secret`` None follows the setting's flag; a part of a setting (an option) may decide for itself.
    """

    rule: str = ""
    value: Any = None
    where: str = ""
    show_type: bool = False
    secret: bool | None = None
    note: str = ""


Check = Callable[[Any], Iterator[Problem]]


@dataclass(frozen=True)
class Rule:
    """A setting's accepted types, then a check of its range or contents; a secret is never quoted."""

    types: tuple[type, ...]
    check: Check | None = None
    secret: bool = False


# --- bounded formatting ---------------------------------------------------------------------------------------


def describe(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """A bounded ``repr``-like rendering of ``value`` (:func:`skyline_analyzer.excerpt.describe`); a URL with
    credentials is not shown."""
    if isinstance(value, str) and _URL_WITH_CREDENTIALS.match(value[:2048]):
        return "<a URL with credentials>"
    return excerpt.describe(value, limit)


def escape(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` with control characters escaped, cut to ``limit`` characters (no quotes added)."""
    return excerpt.escape(text, limit)


def nearest(word: Any, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to ``word`` (difflib), for a 'did you mean' hint; None if none is close."""
    if not isinstance(word, str) or len(word) > QUOTE_LIMIT:
        return None
    found = difflib.get_close_matches(word, list(choices), n=1)
    return found[0] if found else None


def render(name: str, problem: Problem, secret: bool) -> str:
    """The message for one problem; a secret's value is left out, its type is still named."""
    where = f"{name}{problem.where}"
    if problem.note:
        return f"{where} {problem.note}"
    kind = type(problem.value).__name__
    if problem.secret if problem.secret is not None else secret:
        got = f", got {kind}" if problem.show_type else ""
        return f"{where} must be {problem.rule}{got} (value not shown: secret)"
    got = f"{kind} {describe(problem.value)}" if problem.show_type else describe(problem.value)
    return f"{where} must be {problem.rule}, got {got}"


# --- checks --------------------------------------------------------------------------------------------------


def _type_names(types: tuple[type, ...]) -> str:
    return " or ".join("None" if t is type(None) else t.__name__ for t in types)


def accepts(value: Any, types: tuple[type, ...]) -> bool:
    # bool is an int subclass; True is not a valid duration.
    return isinstance(value, types) and (bool in types or not isinstance(value, bool))


def between(low: int, high: int = INT_MAX, *, rule: str = "", below: str = "") -> Check:
    """A whole number from ``low`` to ``high``; ``rule`` names the whole range, ``below`` the lower bound."""

    def check(value: Any) -> Iterator[Problem]:
        if value < low:
            yield Problem(rule or below or f"at least {low}", value)
        elif value > high:
            yield Problem(rule or f"at most {high}", value)

    return check


PORT = between(1, 65535, rule="a port number (1..65535)")


def seconds(value: Any) -> Iterator[Problem]:
    """A timeout or interval: more than 0, finite (NaN compares False with everything, so test it first)."""
    if not 0 < value <= INT_MAX:
        yield Problem("a positive number of seconds", value)


def fraction(value: Any) -> Iterator[Problem]:
    if not 0 < value < 1:
        yield Problem("between 0 and 1 (both excluded)", value)


def one_of(*allowed: Any) -> Check:
    def check(value: Any) -> Iterator[Problem]:
        if value not in allowed:
            yield Problem(f"one of {', '.join(map(repr, allowed))}", value)

    return check


def text(*, empty: bool = True, spaces: bool = True, url: bool = False) -> Check:
    """Printable text (no control characters); optionally non-empty, without whitespace, an http(s) URL."""

    def check(value: Any) -> Iterator[Problem]:
        if not value:
            if not empty:
                yield Problem("non-empty", value)
        elif not value.isprintable():
            yield Problem("printable text (no control characters)", value)
        elif not spaces and any(c.isspace() for c in value):
            yield Problem("free of whitespace", value)
        elif url and not value.startswith(("http://", "https://")):
            yield Problem("an http:// or https:// URL", value)

    return check


def carbon_name(value: Any) -> Iterator[Problem]:
    """What a Graphite path segment allows, for values that reach carbon lines ('' for none)."""
    if value and not _CARBON_NAME.match(value):
        yield Problem("'' or dot-separated parts of letters, digits, '_' and '-'", value)


def port_text(value: Any) -> Iterator[Problem]:
    """GRAPHITE_PORT: a port as an int or a string of digits; '' leaves the port out of links."""
    if isinstance(value, str):
        if value and not (value.isascii() and value.isdigit() and 1 <= int(value[:6]) <= 65535):
            yield Problem("'' or a port number (1..65535)", value)
    else:
        yield from PORT(value)


def path(kind: str = "any", *, absolute: bool = False) -> Check:
    """A path; ``kind`` 'dir' refuses an existing non-directory, 'file' an existing directory.

    Whatever does not exist yet must be creatable: the nearest existing parent must be a directory.
    """

    def check(value: Any) -> Iterator[Problem]:
        problems = list(text(empty=False)(value))
        if problems:
            yield from problems
            return
        if len(value) > PATH_MAX:
            yield Problem(f"at most {PATH_MAX} characters long", value)
            return
        if absolute and not value.startswith("/"):
            yield Problem("an absolute path (the daemons do not run from a known directory)", value)
            return
        # config.load anchors a file's relative ANOMALY_DUMP at the file; any other is the current directory's.
        where = Path(value).absolute()
        if kind == "dir" and where.exists() and not where.is_dir():
            yield Problem("a directory (it names an existing file)", value)
        elif kind == "file" and where.is_dir():
            yield Problem("a file name (it names an existing directory)", value)
        elif not where.exists():
            parent = next((p for p in where.parents if p.exists()), None)
            if parent is not None and not parent.is_dir():
                yield Problem(f"creatable ({escape(str(parent))} is not a directory)", value)

    return check


def socket_path(value: Any) -> Iterator[Problem]:
    yield from text(empty=False)(value)
    if value and value.isprintable() and len(value.encode("utf-8", "surrogateescape")) > UNIX_PATH_MAX:
        yield Problem(f"at most {UNIX_PATH_MAX} bytes (the longest unix socket path)", value)


def items(check_item: Check | None = None, *, types: tuple[type, ...] = (str,), empty: bool = True) -> Check:
    """A list or tuple whose every item has one of ``types`` and passes ``check_item``."""

    def check(value: Any) -> Iterator[Problem]:
        if not empty and not value:
            yield Problem("a non-empty list", value)
        for index, item in enumerate(value):
            if not accepts(item, types):
                yield Problem(_type_names(types), item, f"[{index}]", show_type=True)
            elif check_item is not None:
                for problem in check_item(item):
                    yield replace(problem, where=f"[{index}]{problem.where}")

    return check


def one_or_more(check_item: Check) -> Check:
    """One text value, or a list or tuple of them (recipients, channels, URLs)."""
    many = items(check_item)

    def check(value: Any) -> Iterator[Problem]:
        if isinstance(value, str):
            yield from check_item(value)
        elif isinstance(value, (list, tuple)):
            yield from many(value)
        else:
            yield Problem("str, or a list of str", value, show_type=True)

    return check


def mapping(check_value: Check, key_name: str = "an ALERTS pattern") -> Check:
    """A dict from str (by default an ALERTS pattern) to a value that passes ``check_value``."""

    def check(value: Any) -> Iterator[Problem]:
        for key, item in value.items():
            if not isinstance(key, str):
                yield Problem(f"keyed by str ({key_name})", key, show_type=True)
            else:
                for problem in check_value(item):
                    yield replace(problem, where=f"[{describe(key)}]{problem.where}")

    return check


def options(fields: Mapping[str, Rule]) -> Check:
    """An alerter's options dict: known keys only, each with its own rule (and secret flag)."""

    def check(value: Any) -> Iterator[Problem]:
        for key, item in value.items():
            field = fields.get(key) if isinstance(key, str) else None
            where = f"[{describe(key)}]"
            if field is None:
                hint = nearest(key, fields)
                known = f"did you mean {hint!r}?" if hint else f"known: {', '.join(map(repr, fields))}"
                yield Problem(where=where, note=f"is not a known key ({known})")
                continue
            secret = field.secret or any(word in key for word in _SECRET_KEY_WORDS)
            for problem in value_problems(item, field):
                yield replace(problem, where=where + problem.where, secret=secret or bool(problem.secret))

    return check


def value_problems(value: Any, rule: Rule) -> Iterator[Problem]:
    """The type problem, else what ``rule.check`` finds (None, where accepted, is not checked further)."""
    if not accepts(value, rule.types):
        yield Problem(_type_names(rule.types), value, show_type=True)
    elif rule.check is not None and value is not None:
        yield from rule.check(value)
