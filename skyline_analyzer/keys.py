"""Every Redis key name the analyzer and Horizon read or write, built in one place (docs/redis-keys.md)."""

from __future__ import annotations

#: Heartbeat: SETEX by the Analyzer at the start of every run.
ANALYZER_HEARTBEAT = "analyzer"
#: Heartbeat TTL in seconds.
ANALYZER_HEARTBEAT_TTL = 120
#: Base names that hit each exception in the last refresh period.
ANALYZER_BORING = "analyzer.boring"
ANALYZER_STALE = "analyzer.stale"
ANALYZER_TOO_SHORT = "analyzer.too_short"
#: Full keys whose age is in [ALERT_ON_STALE_PERIOD, STALE_PERIOD): the stale digest's input.
ALERT_ON_STALE_METRICS = "analyzer.alert_on_stale_metrics"
#: Base names matched by an smtp alert tuple (read by Luminosity).
SMTP_ALERTER_METRICS = "analyzer.smtp_alerter_metrics"
#: Throttle for the Mirage-set and analyzer.* set refresh.
MANAGE_MIRAGE_UNIQUE_METRICS = "analyzer.manage_mirage_unique_metrics"
#: Throttle of the refresh of the analyzer.* exception sets and the stale-digest set: while it exists
#: they accumulate; when it expires they are emptied at the start of the next run (FIX L2, independent of
#: Mirage, which keeps its own throttle above).
ANALYZER_SETS_REFRESH = "analyzer.refresh_exception_sets"
ANALYZER_SETS_REFRESH_TTL = 300
#: Prefix of the one "last written" marker member each analyzer.* exception set carries.
UPDATED_AT_MARKER = "_updated_at_"
#: Beyond v1.2.8: a list of JSON records, one per worker per run, newest first, for ``skyline-analyzer tune``
#: (trimmed to TUNE_HISTORY_RUNS × ANALYZER_PROCESSES records).
ANALYZER_TUNE = "analyzer.tune"
#: Full keys of metrics handed to Mirage.
MIRAGE_UNIQUE_METRICS = "mirage.unique_metrics"
#: Full keys of the monotonic metrics analysed as derivatives (alerters title their graphs by it).
DERIVATIVE_METRICS = "derivative_metrics"


def unique_metrics(namespace: str) -> str:
    """The set of every full key in a namespace: ``metrics.unique_metrics`` (no separator added)."""
    return f"{namespace}unique_metrics"


def metric(namespace: str, base_name: str) -> str:
    """The full key of a series: ``metrics.<base_name>``."""
    return f"{namespace}{base_name}"


def base_name(namespace: str, full_key: str) -> str:
    """The base name of a full key (the namespace prefix removed once, if present)."""
    return full_key.removeprefix(namespace)


def last_alert(alerter: str, base: str) -> str:
    """Per (alerter, metric) alert rate limit: ``last_alert.<alerter>.<base_name>``."""
    return f"last_alert.{alerter}.{base}"


def trigger_history(full_key: str) -> str:
    """Second-order trigger history of a metric: ``trigger_history.<full key>``."""
    return f"trigger_history.{full_key}"


def mirage_metric(base: str) -> str:
    """Mirage's dynamic skip list entry: ``mirage.metrics.<base_name>``."""
    return f"mirage.metrics.{base}"


def second_stage_history(full_key: str) -> str:
    """The second stage's longer, downsampled copy of a series: ``second_stage.<full key>``."""
    return f"second_stage.{full_key}"
