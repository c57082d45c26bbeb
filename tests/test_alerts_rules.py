"""ALERTS entries parsed into AlertRule, the matching rules, and the alerter registry."""

from __future__ import annotations

import dataclasses

import pytest

from skyline_analyzer import config, defaults
from skyline_analyzer.alerting import alerters
from skyline_analyzer.alerting.rules import MAX_PROBLEMS, AlertRule, alert_rules, parse
from skyline_analyzer.exceptions import SettingsError


@pytest.mark.parametrize(
    ("pattern", "name", "kind"),
    [
        ("stats.requests", "stats.requests", "exact"),
        ("stats.requests", "stats.requests.foo", "regex"),
        ("stats.requests", "statsXrequests", "regex"),
        ("stats.requests", "a.stats.requests", "substring"),
        ("requests$", "stats.requests", None),
        (r"stats\.(api|web)\.", "stats.web.latency", "regex"),
        (r"stats\.(api|web)\.", "stats.db.latency", None),
        ("stats[", "a.stats[1]", "substring"),
        ("stats[", "stats.requests", None),
        ("(unclosed", "x.(unclosed.y", "substring"),
    ],
)
def test_match_order_exact_then_anchored_regex_then_substring(pattern, name, kind):
    assert AlertRule(pattern, "smtp", 60).match(name) == kind


def test_exact_check_can_be_left_out_for_the_mirage_rebuild():
    rule = AlertRule("a+b", "smtp", 60)
    assert rule.match("a+b") == "exact"
    assert rule.match("a+b", exact=False) == "substring"


@pytest.mark.parametrize(
    ("entry", "rule"),
    [
        (("stats", "smtp", 60), AlertRule("stats", "smtp", 60, None)),
        (["stats", "slack", 600, 168], AlertRule("stats", "slack", 600, 168)),
        (("stats", "oncall@example.org", 900), AlertRule("stats", "oncall@example.org", 900)),
    ],
)
def test_entries_parse_into_frozen_rules(entry, rule):
    [parsed] = parse([entry])
    assert parsed == rule
    assert parsed.is_mirage == (len(entry) == 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.expiration = 1


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (("stats", "smtp"), "ALERTS[0]: must be (pattern, alerter, EXPIRATION_TIME[, SECOND_ORDER_RESOLUTION_HOURS])"),
        ("stats", "ALERTS[0]: must be (pattern, alerter"),
        ((b"stats", "smtp", 60), "ALERTS[0]: the pattern must be a string, got b'stats'"),
        (("stats", "", 60), "ALERTS[0]: the alerter must be a non-empty string, got ''"),
        (("stats", "smtp", "60"), "ALERTS[0]: EXPIRATION_TIME must be a positive int, got '60'"),
        (("stats", "smtp", True), "ALERTS[0]: EXPIRATION_TIME must be a positive int, got True"),
        (("stats", "smtp", 0), "ALERTS[0]: EXPIRATION_TIME must be a positive int, got 0"),
        (("stats", "smtp", 60, -1), "ALERTS[0]: SECOND_ORDER_RESOLUTION_HOURS must be a positive int, got -1"),
    ],
)
def test_malformed_entries_raise_settings_error(entry, problem):
    with pytest.raises(SettingsError) as raised:
        parse([entry])
    [message] = raised.value.problems
    assert message.startswith(problem)


def test_parse_errors_are_bounded_whatever_the_entry():
    nested: list = ["x" * 10_000]
    for _ in range(1000):
        nested = [nested]
    huge = ("\n" * 100_000, "smtp", -(10**5000))
    with pytest.raises(SettingsError) as raised:
        parse([nested, huge] + [("ok", "smtp", 60)] + [("bad",)] * 50)
    problems = raised.value.problems
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1] == f"ALERTS: {52 - MAX_PROBLEMS} more malformed entries"
    assert problems[1] == "ALERTS[1]: EXPIRATION_TIME must be a positive int, got <int of 16610 bits>"
    assert all(len(p) < 300 and "\n" not in p for p in problems)


def test_alerts_not_a_list_is_one_problem():
    with pytest.raises(SettingsError, match="ALERTS must be a list of tuples, got 'stats'"):
        parse("stats")


def test_alerts_are_parsed_once_per_settings(make_settings):
    settings = config.load(make_settings(ALERTS=[("stats", "smtp", 60), ("web", "syslog", 1, 24)]))
    rules = alert_rules(settings)
    assert rules == (AlertRule("stats", "smtp", 60), AlertRule("web", "syslog", 1, 24))
    assert alert_rules(settings) is rules
    other = config.load(make_settings(ALERTS=[("stats", "smtp", 60)]))
    assert alert_rules(other) == (AlertRule("stats", "smtp", 60),)


def test_the_registry_serves_exactly_the_names_settings_accept():
    assert sorted(alerters.REGISTRY) == sorted(defaults.ALERTER_NAMES)


@pytest.mark.parametrize(("name", "switch"), [("smtp", None), ("syslog", "SYSLOG_ENABLED"),
                                              ("slack", "SLACK_ENABLED"), ("pagerduty", "PAGERDUTY_ENABLED"),
                                              ("webhook", "WEBHOOK_ENABLED")])
def test_each_alerter_has_its_module_and_its_switch(name, switch):
    alerter = alerters.REGISTRY[name]
    assert alerter.enabled_by == switch
    assert alerter.module.__name__ == f"skyline_analyzer.alerting.alerters.{name}"
    assert callable(alerter.module.alert)
    if switch is not None:
        assert isinstance(defaults.DEFAULTS[switch], bool)


def test_an_address_is_served_by_smtp_and_an_unknown_name_by_nothing():
    assert alerters.for_rule(AlertRule("stats", "oncall@example.org", 60)) is alerters.REGISTRY["smtp"]
    assert alerters.for_rule(AlertRule("stats", "hipchat", 60)) is None
    # The stale digest is the daemon's own channel, not one an ALERTS entry may name.
    assert alerters.for_rule(AlertRule("stats", "stale_digest", 60)) is None
