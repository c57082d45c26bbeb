"""How every setting is checked: one row per setting (accepted types, range or allowed values, secret flag).

:func:`check` returns one message per broken rule, naming the setting and the rule; a value is quoted only
bounded and escaped, and never when it is a secret (:mod:`skyline_analyzer.checks`). The rules, and how the
messages look, are in docs/settings.md. A new setting is one row in :data:`SCHEMA`, beside its default in
:mod:`skyline_analyzer.defaults`.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from skyline_analyzer.checks import (
    PORT,
    Problem,
    Rule,
    accepts,
    between,
    carbon_name,
    describe,
    escape,
    fraction,
    items,
    mapping,
    nearest,
    one_of,
    one_or_more,
    options,
    path,
    port_text,
    render,
    seconds,
    socket_path,
    text,
    value_problems,
)
from skyline_analyzer.defaults import ALERTER_NAMES, ALGORITHM_NAMES, ENGINES, EXECUTORS, RETIRED_ALERTERS

#: Most processes or threads one setting may ask for.
MAX_PROCESSES = 1024
#: Problems reported per setting; a list with a million bad items gives a bounded message.
PROBLEMS_PER_SETTING = 5

_SECRET_NAME = re.compile(r"_(PASSWORD|TOKEN|KEY|SECRET)\Z")


def is_secret(name: str) -> bool:
    """Passwords, tokens, keys and the alerter options that hold them: never quoted in a message."""
    rule = SCHEMA.get(name)
    return bool(_SECRET_NAME.search(name)) or (rule is not None and rule.secret)


def bind_address(value: Any) -> Iterator[Problem]:
    if value == "":
        yield Problem(note="= '' would listen on every interface: write '0.0.0.0' if that is what you want")
    else:
        yield from text(spaces=False)(value)


def cluster_node(value: Any) -> Iterator[Problem]:
    """A Redis Cluster startup node: ``'host:port'`` (an IPv6 host in brackets: ``'[::1]:7000'``)."""
    host, _, port = value.rpartition(":")
    good_host = host.strip("[]") and host.isprintable() and not any(c.isspace() for c in host)
    if not (good_host and port.isascii() and port.isdigit() and 1 <= int(port[:6]) <= 65535):
        yield Problem("'host:port' with a port number (1..65535)", value)


def syslog_address(value: Any) -> Iterator[Problem]:
    """A unix socket path, or a ``[host, port]`` pair for UDP."""
    if isinstance(value, str):
        yield from socket_path(value)
    elif len(value) != 2 or not isinstance(value[0], str) or not accepts(value[1], (int,)):
        yield Problem("a socket path or a [host, port] pair", value)
    else:
        yield from (replace(p, where="[0]") for p in text(empty=False, spaces=False)(value[0]))
        yield from (replace(p, where="[1]") for p in PORT(value[1]))


def ip_network(value: Any) -> Iterator[Problem]:
    """An IPv4 or IPv6 address or network ('10.0.0.0/8')."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        yield Problem("an IP address or network (e.g. '10.0.0.0/8')", value)


def algorithm_names(value: Any) -> Iterator[Problem]:
    """At least one of the nine algorithms, each at most once."""
    if not value:
        yield Problem(note="must name at least one algorithm")
    for index, name in enumerate(value):
        if name not in ALGORITHM_NAMES:
            hint = nearest(name, ALGORITHM_NAMES)
            known = f"did you mean {hint!r}?" if hint else f"known: {', '.join(ALGORITHM_NAMES)}"
            yield Problem(where=f"[{index}]", note=f"{describe(name)} is not a Skyline algorithm ({known})")
    names = [name for name in value if isinstance(name, str)]
    if len(set(names)) != len(names):
        yield Problem(note="names an algorithm more than once")


def _alerter_problem(alerter: Any) -> Problem | None:
    if not isinstance(alerter, str):
        return Problem("str (an alerter name or an e-mail address)", alerter, show_type=True)
    if alerter in ALERTER_NAMES or alerter in RETIRED_ALERTERS:
        return None
    if "@" in alerter and alerter.isprintable() and not any(c.isspace() for c in alerter):
        return None
    hint = nearest(alerter, ALERTER_NAMES)
    known = f"did you mean {hint!r}?" if hint else "use " + ", ".join(ALERTER_NAMES) + " or an e-mail address"
    return Problem(note=f"{describe(alerter)} is not an alerter ({known})")


def alert_rows(value: Any) -> Iterator[Problem]:
    """(pattern, alerter, EXPIRATION_TIME[, SECOND_ORDER_RESOLUTION_HOURS]) with a regex that compiles."""
    for index, row in enumerate(value):
        where = f"[{index}]"
        if not isinstance(row, (list, tuple)) or len(row) not in (3, 4):
            yield Problem("(pattern, alerter, EXPIRATION_TIME[, SECOND_ORDER_RESOLUTION_HOURS])", row, where)
            continue
        pattern, alerter, *times = row
        if not isinstance(pattern, str):
            yield Problem("str (a metric pattern)", pattern, f"{where} pattern", show_type=True)
        else:
            try:
                with warnings.catch_warnings():  # a FutureWarning about the pattern is not the operator's error
                    warnings.simplefilter("ignore")
                    re.compile(pattern)
            except Exception as exc:  # re.error, or OverflowError/RecursionError on absurd patterns
                reason = escape(str(exc.args[0]) if exc.args else type(exc).__name__)
                yield Problem(f"a regular expression that compiles ({reason})", pattern, f"{where} pattern")
        problem = _alerter_problem(alerter)
        if problem is not None:
            yield replace(problem, where=f"{where} alerter")
        for label, amount in zip(("EXPIRATION_TIME", "SECOND_ORDER_RESOLUTION_HOURS"), times, strict=False):
            if not accepts(amount, (int,)):
                yield Problem("int", amount, f"{where} {label}", show_type=True)
            else:
                yield from (replace(p, where=f"{where} {label}") for p in POSITIVE(amount))


# --- the table -----------------------------------------------------------------------------------------------

STR, INT, BOOL, DICT = (str,), (int,), (bool,), (dict,)
NUMBER = (int, float)
LIST = (list, tuple)
STR_OR_NONE = (str, type(None))

POSITIVE = between(1, below="positive")
NON_NEGATIVE = between(0, below="0 or more")
PROCESSES = between(1, MAX_PROCESSES, below="positive")
PRINTABLE = text()
WORD = text(empty=False, spaces=False)
# A mail address may carry a display name ('Skyline <sky@example.com>'); never a line break.
ADDRESS = text(empty=False)
URL = text(empty=False, spaces=False, url=True)
PATTERNS = items(text(empty=False))

SCHEMA: dict[str, Rule] = {
    # --- Redis
    "REDIS_SOCKET_PATH": Rule(STR, socket_path),
    "REDIS_PASSWORD": Rule(STR_OR_NONE, secret=True),
    "REDIS_HOST": Rule(STR_OR_NONE, WORD),
    "REDIS_PORT": Rule(INT, PORT),
    "REDIS_CLUSTER_NODES": Rule(LIST, items(cluster_node)),
    # --- Paths
    "LOG_PATH": Rule(STR, path("dir", absolute=True)),
    "PID_PATH": Rule(STR, path("dir", absolute=True)),
    "SKYLINE_TMP_DIR": Rule(STR, path("dir", absolute=True)),
    "FULL_NAMESPACE": Rule(STR, WORD),
    "MINI_NAMESPACE": Rule(STR, WORD),
    "FULL_DURATION": Rule(INT, POSITIVE),
    "MINI_DURATION": Rule(INT, POSITIVE),
    "ENABLE_DEBUG": Rule(BOOL),
    # --- Graphite
    "GRAPHITE_HOST": Rule(STR, text(spaces=False)),
    "GRAPHITE_PROTOCOL": Rule(STR, one_of("http", "https")),
    "GRAPHITE_PORT": Rule((str, int), port_text),
    "GRAPHITE_GRAPH_SETTINGS": Rule(STR, text(spaces=False)),
    "GRAPHITE_CONNECT_TIMEOUT": Rule(NUMBER, seconds),
    "GRAPHITE_READ_TIMEOUT": Rule(NUMBER, seconds),
    "TARGET_HOURS": Rule(STR, WORD),
    "GRAPH_URL": Rule(STR, URL),
    "CARBON_PORT": Rule(INT, PORT),
    "OCULUS_HOST": Rule(STR, text(spaces=False)),
    "SERVER_METRICS_NAME": Rule(STR, carbon_name),
    # --- Downstream apps
    "MIRAGE_CHECK_PATH": Rule(STR, path("dir")),
    "CRUCIBLE_CHECK_PATH": Rule(STR, path("dir")),
    "PANORAMA_CHECK_PATH": Rule(STR, path("dir")),
    # --- Analyzer
    "ANOMALY_DUMP": Rule(STR, path("file")),
    "ANOMALY_DUMP_JSONP": Rule(BOOL),
    "ANALYZER_PROCESSES": Rule(INT, PROCESSES),
    "ANALYZER_ENGINE": Rule(STR, one_of(*ENGINES)),
    "ANALYZER_OPTIMUM_RUN_DURATION": Rule(INT, POSITIVE),
    "MAX_ANALYZER_PROCESS_RUNTIME": Rule(INT, POSITIVE),
    "ANALYZER_EXECUTOR": Rule(STR, one_of(*EXECUTORS)),
    "DASK_SCHEDULER_ADDRESS": Rule(STR, WORD),
    "DASK_UNITS_PER_RUN": Rule(INT, between(1, 16384, rule="1 to 16384 (one hash slot each at most)")),
    "DASK_CONNECT_TIMEOUT": Rule(NUMBER, seconds),
    "STALE_PERIOD": Rule(INT, POSITIVE),
    "ALERT_ON_STALE_METRICS": Rule(BOOL),
    "ALERT_ON_STALE_PERIOD": Rule(INT, NON_NEGATIVE),
    "DO_NOT_ALERT_ON_STALE_METRICS": Rule(LIST, PATTERNS),
    "MIN_TOLERABLE_LENGTH": Rule(INT, POSITIVE),
    "MAX_TOLERABLE_BOREDOM": Rule(INT, POSITIVE),
    "BOREDOM_SET_SIZE": Rule(INT, POSITIVE),
    "CANARY_METRIC": Rule(STR, text(empty=False)),
    "ALGORITHMS": Rule(LIST, algorithm_names),
    "CONSENSUS": Rule(INT, POSITIVE),
    "RUN_OPTIMIZED_WORKFLOW": Rule(BOOL),
    "ENABLE_ALGORITHM_RUN_METRICS": Rule(BOOL),
    "ENABLE_ALL_ALGORITHMS_RUN_METRICS": Rule(BOOL),
    "TUNE_SAMPLE_SIZE": Rule(INT, between(0, 1000, rule="0 to 1000")),
    "TUNE_HISTORY_RUNS": Rule(INT, between(1, 100000, rule="1 to 100000")),
    "ENABLE_SECOND_ORDER": Rule(BOOL),
    "ENABLE_ALERTS": Rule(BOOL),
    "ENABLE_MIRAGE": Rule(BOOL),
    "ENABLE_FULL_DURATION_ALERTS": Rule(BOOL),
    "ANALYZER_CRUCIBLE_ENABLED": Rule(BOOL),
    "ENABLE_CRUCIBLE": Rule(BOOL),
    "CRUCIBLE_DATA_FOLDER": Rule(STR, path("dir")),
    "PANORAMA_ENABLED": Rule(BOOL),
    "IONOSPHERE_ENABLED": Rule(BOOL),
    "IONOSPHERE_CHECK_PATH": Rule(STR, path("dir")),
    "IONOSPHERE_DATA_FOLDER": Rule(STR, path("dir")),
    "IONOSPHERE_PROFILES_FOLDER": Rule(STR, path("dir")),
    "IONOSPHERE_KEEP_TRAINING_TIMESERIES_FOR": Rule(INT, POSITIVE),
    "SKYLINE_URL": Rule(STR, URL),
    "MEMCACHE_ENABLED": Rule(BOOL),
    "MEMCACHED_SERVER_IP": Rule(STR, WORD),
    "MEMCACHED_SERVER_PORT": Rule(INT, PORT),
    "LUMINOL_CROSS_CORRELATION_THRESHOLD": Rule(NUMBER, fraction),
    # v1.2.8 lists [host, port, password] per instance.
    "OTHER_SKYLINE_REDIS_INSTANCES": Rule(LIST, items(types=LIST), secret=True),
    "NON_DERIVATIVE_MONOTONIC_METRICS": Rule(LIST, PATTERNS),
    # --- Alerts
    "ALERTS": Rule(LIST, alert_rows),
    "PLOT_REDIS_DATA": Rule(BOOL),
    "SMTP_OPTS": Rule(DICT, options({
        "sender": Rule(STR, ADDRESS),
        "recipients": Rule(DICT, mapping(one_or_more(ADDRESS))),
        "default_recipient": Rule((str, list, tuple), one_or_more(ADDRESS)),
        "embed-images": Rule(BOOL),
    })),
    "SMTP_HOST": Rule(STR, WORD),
    "SMTP_PORT": Rule(INT, PORT),
    "SMTP_USER": Rule(STR, PRINTABLE),
    "SMTP_PASSWORD": Rule(STR, secret=True),
    "SMTP_STARTTLS": Rule(BOOL),
    "SMTP_SSL": Rule(BOOL),
    "ALERT_SENDER": Rule(STR_OR_NONE, ADDRESS),
    "ALERT_TIMEOUT": Rule(NUMBER, seconds),
    "ALERT_CONCURRENCY": Rule(INT, PROCESSES),
    "ALERT_DISPATCH_TIMEOUT": Rule(NUMBER, seconds),
    "ALERT_MATCH_CACHE_SIZE": Rule(INT, POSITIVE),
    "SYSLOG_ENABLED": Rule(BOOL),
    "SYSLOG_OPTS": Rule(DICT, options({
        "ident": Rule(STR, WORD),
        "address": Rule((str, list, tuple), syslog_address),
    })),
    "HIPCHAT_ENABLED": Rule(BOOL),
    "HIPCHAT_OPTS": Rule(DICT, options({
        "auth_token": Rule(STR), "sender": Rule(STR, PRINTABLE), "rooms": Rule(DICT), "color": Rule(STR, WORD),
    }), secret=True),
    "PAGERDUTY_ENABLED": Rule(BOOL),
    "PAGERDUTY_OPTS": Rule(DICT, options({
        "subdomain": Rule(STR, WORD),
        "auth_token": Rule(STR),
        "key": Rule(STR),
        "routing_key": Rule(STR),
        "events_url": Rule(STR, URL),
        "severity": Rule(STR, one_of("critical", "error", "warning", "info")),
    }), secret=True),
    "SLACK_ENABLED": Rule(BOOL),
    "SLACK_OPTS": Rule(DICT, options({
        "bot_user_oauth_access_token": Rule(STR),
        "channels": Rule(DICT, mapping(one_or_more(WORD))),
        "icon_emoji": Rule(STR, WORD),
        "webhook_url": Rule(STR, text(spaces=False, url=True), secret=True),
        "api_url": Rule(STR, URL),
    }), secret=True),
    "WEBHOOK_ENABLED": Rule(BOOL),
    "WEBHOOK_OPTS": Rule(DICT, options({
        "urls": Rule(DICT, mapping(one_or_more(URL)), secret=True),
        "default_urls": Rule((str, list, tuple), one_or_more(URL), secret=True),
        "headers": Rule(DICT, mapping(text(empty=False), "a header name"), secret=True),
    }), secret=True),
    # --- Webapp
    "WEBAPP_IP": Rule(STR, bind_address),
    "WEBAPP_PORT": Rule(INT, PORT),
    "WEBAPP_AUTH_ENABLED": Rule(BOOL),
    "WEBAPP_AUTH_USER": Rule(STR, text(spaces=False)),
    "WEBAPP_AUTH_USER_PASSWORD": Rule(STR, secret=True),
    "WEBAPP_ALLOWED_IPS": Rule(LIST, items(ip_network)),
    "WEBAPP_MAX_QUERY_BYTES": Rule(INT, between(64, 1 << 20, rule="64 to 1048576 bytes")),
    "WEBAPP_MAX_SEARCH_RESULTS": Rule(INT, between(1, 10000, rule="1 to 10000")),
    "WEBAPP_METRICS_CACHE_SECONDS": Rule(NUMBER, seconds),
    "WEBAPP_MAX_SERIES_BYTES": Rule(INT, POSITIVE),
    "WEBAPP_MAX_DUMP_BYTES": Rule(INT, POSITIVE),
    "WEBAPP_MAX_ANOMALIES_SHOWN": Rule(INT, POSITIVE),
    # --- Horizon
    "WORKER_PROCESSES": Rule(INT, PROCESSES),
    "HORIZON_IP": Rule(STR, bind_address),
    "PICKLE_PORT": Rule(INT, PORT),
    "UDP_PORT": Rule(INT, PORT),
    "PLAINTEXT_PORT": Rule(INT, PORT),
    "MAX_PICKLE_FRAME_BYTES": Rule(INT, POSITIVE),
    "CHUNK_FLUSH_INTERVAL": Rule(NUMBER, seconds),
    "CHUNK_SIZE": Rule(INT, POSITIVE),
    "MAX_QUEUE_SIZE": Rule(INT, POSITIVE),
    "ROOMBA_PROCESSES": Rule(INT, PROCESSES),
    "ROOMBA_GRACE_TIME": Rule(INT, NON_NEGATIVE),
    "ROOMBA_TIMEOUT": Rule(INT, POSITIVE),
    "ROOMBA_BATCH_BYTES": Rule(INT, POSITIVE),
    "MAX_RESOLUTION": Rule(INT, POSITIVE),
    "SKIP_LIST": Rule(LIST, PATTERNS),
    "DO_NOT_SKIP_LIST": Rule(LIST, PATTERNS),
    "HORIZON_MAX_CONNECTIONS": Rule(INT, POSITIVE),
    "HORIZON_IDLE_TIMEOUT": Rule(NUMBER, seconds),
    "HORIZON_MAX_BUFFERED_BYTES": Rule(INT, POSITIVE),
    "HORIZON_MAX_NAME_BYTES": Rule(INT, POSITIVE),
    "HORIZON_CACHE_BYTES": Rule(INT, POSITIVE),
    "HORIZON_REPORT_INTERVAL": Rule(INT, between(1, 86400, rule="1 to 86400 seconds")),
    # --- The second stage
    "SECOND_STAGE_ENABLED": Rule(BOOL),
    "SECOND_STAGE_MIN_VOTES": Rule(INT, POSITIVE),
    "SECOND_STAGE_DURATION": Rule(INT, POSITIVE),
    "SECOND_STAGE_RESOLUTION": Rule(INT, between(1, 86400, rule="1 to 86400 seconds")),
    "SECOND_STAGE_PERIOD": Rule(INT, POSITIVE),
    "SECOND_STAGE_WINDOW": Rule(INT, NON_NEGATIVE),
    "SECOND_STAGE_MIN_PERIODS": Rule(INT, POSITIVE),
    "SECOND_STAGE_THRESHOLD": Rule(NUMBER, seconds),
}


# --- checks across settings ----------------------------------------------------------------------------------


def _consensus(settings: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    count = len(settings["ALGORITHMS"])
    if settings["CONSENSUS"] > count:
        yield "CONSENSUS", (f"CONSENSUS = {settings['CONSENSUS']} is more than the {count} ALGORITHMS:"
                            " nothing could ever be anomalous")


def _second_stage_votes(settings: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    # Only with the stage on: a settings file that lowers CONSENSUS must not fail over a stage it does not use.
    if settings["SECOND_STAGE_ENABLED"] and settings["SECOND_STAGE_MIN_VOTES"] > settings["CONSENSUS"]:
        yield "SECOND_STAGE_MIN_VOTES", (f"SECOND_STAGE_MIN_VOTES = {settings['SECOND_STAGE_MIN_VOTES']} is more than "
                                         f"CONSENSUS = {settings['CONSENSUS']}: the first stage's anomalies would "
                                         "not all be candidates")


def _second_stage_history(settings: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    if not settings["SECOND_STAGE_ENABLED"]:
        return
    needed = settings["SECOND_STAGE_MIN_PERIODS"] * settings["SECOND_STAGE_PERIOD"]
    if settings["SECOND_STAGE_DURATION"] < needed:
        yield "SECOND_STAGE_DURATION", (f"SECOND_STAGE_DURATION = {settings['SECOND_STAGE_DURATION']} is shorter than "
                                        f"SECOND_STAGE_MIN_PERIODS periods ({needed} s): nothing could be judged")


def _slack_after_smtp(settings: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    # v1.2.8's start-up rule: with slack on, slack tuples come after the smtp ones.
    if not settings["SLACK_ENABLED"]:
        return
    alerters = [row[1] for row in settings["ALERTS"]]
    first_smtp = alerters.index("smtp") if "smtp" in alerters else None
    for index, alerter in enumerate(alerters):
        if alerter == "slack" and (first_smtp is None or index < first_smtp):
            yield "ALERTS", f"ALERTS[{index}]: slack tuples must come after the smtp tuples"
        if alerter == "smtp" and "slack" in alerters[:index]:
            yield "ALERTS", f"ALERTS[{index}]: an smtp tuple must not follow a slack tuple"


def _webapp_password(settings: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    if settings["WEBAPP_AUTH_ENABLED"] and not settings["WEBAPP_AUTH_USER_PASSWORD"]:
        yield "WEBAPP_AUTH_USER_PASSWORD", "WEBAPP_AUTH_USER_PASSWORD: must be set when WEBAPP_AUTH_ENABLED is True"


def _buffer_holds_a_frame(settings: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    # A listener that cannot hold one whole pickle frame would close every connection sending one.
    buffered, frame = settings["HORIZON_MAX_BUFFERED_BYTES"], settings["MAX_PICKLE_FRAME_BYTES"]
    if buffered < frame + 4:
        yield "HORIZON_MAX_BUFFERED_BYTES", (f"HORIZON_MAX_BUFFERED_BYTES = {buffered} must hold one whole pickle "
                                             f"frame: MAX_PICKLE_FRAME_BYTES + 4 = {frame + 4}")


#: Checks that involve several settings, each run only when those settings passed their own rules.
CROSS_CHECKS: tuple[tuple[tuple[str, ...], Callable[[Mapping[str, Any]], Iterator[tuple[str, str]]]], ...] = (
    (("CONSENSUS", "ALGORITHMS"), _consensus),
    (("SLACK_ENABLED", "ALERTS"), _slack_after_smtp),
    (("HORIZON_MAX_BUFFERED_BYTES", "MAX_PICKLE_FRAME_BYTES"), _buffer_holds_a_frame),
    (("WEBAPP_AUTH_ENABLED", "WEBAPP_AUTH_USER_PASSWORD"), _webapp_password),
    (("SECOND_STAGE_ENABLED", "SECOND_STAGE_MIN_VOTES", "CONSENSUS"), _second_stage_votes),
    (("SECOND_STAGE_ENABLED", "SECOND_STAGE_DURATION", "SECOND_STAGE_MIN_PERIODS", "SECOND_STAGE_PERIOD"),
     _second_stage_history),
)


def check(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(setting, message)`` for every broken rule, in table order; empty when every setting is valid."""
    found: list[tuple[str, str]] = []
    bad: set[str] = set()
    for name, rule in SCHEMA.items():
        if name not in settings:
            continue
        secret = is_secret(name)
        try:
            problems = list(itertools.islice(value_problems(settings[name], rule), PROBLEMS_PER_SETTING + 1))
        except Exception as exc:  # a value of an accepted type that still cannot be compared or iterated
            problems = [Problem(note=f"could not be checked ({type(exc).__name__})")]
        for problem in problems[:PROBLEMS_PER_SETTING]:
            found.append((name, render(name, problem, secret)))
        if len(problems) > PROBLEMS_PER_SETTING:
            found.append((name, f"{name}: more problems not shown"))
        if problems:
            bad.add(name)
    for names, cross_check in CROSS_CHECKS:
        if not bad.intersection(names) and all(name in settings for name in names):
            found.extend(cross_check(settings))
    return found
