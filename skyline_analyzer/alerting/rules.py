"""ALERTS entries as typed rules, parsed once, and how a rule's pattern matches a metric name.

Light on purpose (no settings, Redis or alerter imports): settings validation may call :func:`parse`.

An ALERTS entry is ``(pattern, alerter, EXPIRATION_TIME[, SECOND_ORDER_RESOLUTION_HOURS])``; docs/alerts.md
("ALERTS tuples") states the matching rules and the order in which rules are tried.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from skyline_analyzer import excerpt
from skyline_analyzer.exceptions import SettingsError

#: How a pattern matched a name, in the order the rules are tried.
MatchKind = Literal["exact", "regex", "substring"]
#: Problems listed in one SettingsError before the rest are only counted.
MAX_PROBLEMS = 10


@dataclass(frozen=True)
class AlertRule:
    """One ALERTS entry.

    ``alerter`` is the name as written: an alerter of the registry or, legacy, an e-mail address that the
    smtp alerter mails. ``expiration`` is the rate-limit TTL in seconds (EXPIRATION_TIME).
    ``second_order_resolution_hours`` is set on a Mirage rule (a 4-element entry) and None otherwise.
    """

    pattern: str
    alerter: str
    expiration: int
    second_order_resolution_hours: int | None = None
    # None when the pattern does not compile: the regex rule is then skipped, as in v1.2.8.
    regex: re.Pattern[str] | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", _compile(self.pattern))

    @property
    def is_mirage(self) -> bool:
        """A 4-element entry: with ENABLE_MIRAGE its metrics are handed to Mirage."""
        return self.second_order_resolution_hours is not None

    @property
    def channel(self) -> str:
        """The registry name of the alerter: ``smtp`` for an e-mail address, else the name itself."""
        return "smtp" if "@" in self.alerter else self.alerter

    def match(self, base_name: str, *, exact: bool = True) -> MatchKind | None:
        """How the pattern matches ``base_name``: ``'exact'``, ``'regex'``, ``'substring'`` or None.

        String equality first (left out when ``exact`` is False, as the Mirage set rebuild and the smtp
        alerter metrics do), then ``re.match`` (anchored at the start only), then ``pattern in base_name``.
        """
        if exact and self.pattern == base_name:
            return "exact"
        if self.regex is not None and self.regex.match(base_name):
            return "regex"
        if self.pattern in base_name:
            return "substring"
        return None


def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return None


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def parse_entry(entry: Any) -> AlertRule:
    """One ALERTS entry as an :class:`AlertRule`; ValueError (bounded message) when it is malformed."""
    if not isinstance(entry, list | tuple) or len(entry) not in (3, 4):
        raise ValueError(f"must be (pattern, alerter, EXPIRATION_TIME[, SECOND_ORDER_RESOLUTION_HOURS]),"
                         f" got {excerpt.describe(entry)}")
    pattern, alerter, expiration, *hours = entry
    if not isinstance(pattern, str):
        raise ValueError(f"the pattern must be a string, got {excerpt.describe(pattern)}")
    if not isinstance(alerter, str) or not alerter:
        raise ValueError(f"the alerter must be a non-empty string, got {excerpt.describe(alerter)}")
    if not _positive_int(expiration):
        raise ValueError(f"EXPIRATION_TIME must be a positive int, got {excerpt.describe(expiration)}")
    if hours and not _positive_int(hours[0]):
        raise ValueError(f"SECOND_ORDER_RESOLUTION_HOURS must be a positive int, got {excerpt.describe(hours[0])}")
    return AlertRule(pattern, alerter, expiration, hours[0] if hours else None)


def parse(alerts: Any) -> tuple[AlertRule, ...]:
    """Every ALERTS entry as a rule, in order; :class:`SettingsError` naming each malformed entry.

    At most :data:`MAX_PROBLEMS` problems are spelt out, each with a bounded rendering of the entry.
    """
    if not isinstance(alerts, list | tuple):
        raise SettingsError([f"ALERTS must be a list of tuples, got {excerpt.describe(alerts)}"])
    rules = []
    problems = []
    for index, entry in enumerate(alerts):
        try:
            rules.append(parse_entry(entry))
        except ValueError as exc:
            problems.append(f"ALERTS[{index}]: {exc}")
    if problems:
        shown = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"ALERTS: {len(problems) - MAX_PROBLEMS} more malformed entries")
        raise SettingsError(shown)
    return tuple(rules)


class _Parsed:
    """The rules of the last ALERTS value parsed, keyed by the identity of that value.

    The value is held, so its id cannot be reused by another object while it is the key. The daemon's
    settings never change, so ALERTS is parsed once per process; a new Settings object parses again.
    """

    def __init__(self) -> None:
        self._entry: tuple[Any, tuple[AlertRule, ...]] | None = None
        self._lock = threading.Lock()

    def rules(self, alerts: Any) -> tuple[AlertRule, ...]:
        entry = self._entry
        if entry is not None and entry[0] is alerts:
            return entry[1]
        with self._lock:
            parsed = parse(alerts)
            self._entry = (alerts, parsed)
        return parsed


_PARSED = _Parsed()


def alert_rules(settings: Mapping[str, Any]) -> tuple[AlertRule, ...]:
    """``settings['ALERTS']`` as rules, parsed once; :class:`SettingsError` when an entry is malformed.

    Only a mapping is asked for, so that settings validation can use this module without a cycle.
    """
    return _PARSED.rules(settings["ALERTS"])
