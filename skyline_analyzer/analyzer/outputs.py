"""What a run leaves behind: its report, the anomaly dump, the summary log lines and the Graphite figures.

The fixed-label summary lines and the metric names are interfaces: dashboards and scripts parse them
(docs/analyzer.md lists both).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from skyline_analyzer import codec, graphite
from skyline_analyzer.analyzer import run_metrics
from skyline_analyzer.config import Settings
from skyline_analyzer.detection.anomaly import Anomaly
from skyline_analyzer.exceptions import ExceptionKind, SeriesFormatError

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    """The outcome of one run, as logged and sent to Graphite."""

    run_time: float
    total_metrics: int
    total_analyzed: int
    anomalies: list[Anomaly]
    exceptions: dict[str, int]
    anomaly_breakdown: dict[str, int]
    unprocessed: int = 0
    killed_workers: int = 0

    @property
    def total_anomalies(self) -> int:
        return len(self.anomalies)


def anomaly_dump_path(settings: Settings) -> Path:
    """``ANOMALY_DUMP`` as an absolute path.

    :func:`skyline_analyzer.config.load` already anchors a relative value at the settings file's directory;
    one set by a program is taken from the current directory. Never the package's: nothing is written there.
    """
    return Path(settings.ANOMALY_DUMP).absolute()


def anomaly_dump_text(settings: Settings, anomalies: Iterable[Anomaly]) -> str:
    """JSON list of ``[value, base_name, timestamp]`` sorted by base_name, optionally as JSONP.

    ``json.dumps`` escapes every control character in a name, so a name cannot break the file's syntax.
    """
    records = [a.as_list() for a in sorted(anomalies, key=lambda a: a.base_name)]
    text = json.dumps(records)
    return f"handle_data({text})" if settings.ANOMALY_DUMP_JSONP else text


def write_anomaly_dump(settings: Settings, anomalies: Iterable[Anomaly]) -> Path:
    """Replace ``ANOMALY_DUMP`` atomically (a reader never sees half a file); mode 0644, dirs 0755."""
    return _replace(anomaly_dump_path(settings), anomaly_dump_text(settings, anomalies))


def _replace(path: Path, text: str) -> Path:
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


#: The run report's file name, beside ANOMALY_DUMP (docs/webapp.md).
RUN_REPORT_NAME = "analyzer_run.json"


def run_report_path(settings: Settings) -> Path:
    """``analyzer_run.json`` in the directory of ``ANOMALY_DUMP``."""
    return anomaly_dump_path(settings).parent / RUN_REPORT_NAME


def run_report_text(report: RunReport, started: float) -> str:
    """The last run's figures and its anomalies with the algorithms that triggered, as JSON."""
    return json.dumps({
        "started": started,
        "run_time": round(report.run_time, 3),
        "total_metrics": report.total_metrics,
        "total_analyzed": report.total_analyzed,
        "total_anomalies": report.total_anomalies,
        "unprocessed": report.unprocessed,
        "exceptions": report.exceptions,
        "anomaly_breakdown": report.anomaly_breakdown,
        "anomalies": [{"metric": a.base_name, "value": a.value, "timestamp": a.timestamp,
                       "triggered": list(a.triggered),
                       **({"second_stage": a.second_stage} if a.second_stage is not None else {})}
                      for a in report.anomalies],
    })


def write_run_report(settings: Settings, report: RunReport, started: float) -> Path:
    """Replace the run report atomically, as the dump: the web app's Now page reads both."""
    return _replace(run_report_path(settings), run_report_text(report, started))


def canary_figures(raw: bytes | None, run_seconds: float, name: str) -> tuple[float, float | None] | None:
    """``(duration_hours, projected)`` of the canary series, or None when it is absent or unusable.

    ``projected`` is None when the series spans no time (FIX L7: the original sent the string "None").
    """
    if raw is None:
        return None
    series = codec.decode(raw, name)
    if len(series) == 0:
        raise SeriesFormatError(f"{name}: the canary series is empty")
    duration_hours = float(series.timestamps[-1] - series.timestamps[0]) / 3600
    projected = 24 * run_seconds / duration_hours if duration_hours else None
    return duration_hours, projected


def timing_metrics(batch: graphite.MetricBatch, tmp_dir: Path, algorithms: list[str]) -> None:
    """``algorithm_breakdown.<alg>.timing.{times_run,total_time,median_time}`` from the run-metric files."""
    for algorithm, timing in run_metrics.collect_run_metrics(tmp_dir, algorithms).items():
        log.info("algorithm timing - %s - total: %.6f - median: %.6f", algorithm, timing.total_time,
                 timing.median_time)
        prefix = f"algorithm_breakdown.{algorithm}.timing"
        batch.add(f"{prefix}.times_run", timing.times_run)
        batch.add(f"{prefix}.total_time", timing.total_time)
        batch.add(f"{prefix}.median_time", timing.median_time)


def log_summary(report: RunReport) -> None:
    """The run's fixed-label lines (consumers parse them); ``total unprocessed`` is beyond v1.2.8."""
    log.info("seconds to run     :: %.2f", report.run_time)
    log.info("total metrics      :: %d", report.total_metrics)
    log.info("total analyzed     :: %d", report.total_analyzed)
    log.info("total anomalies    :: %d", report.total_anomalies)
    log.info("total unprocessed  :: %d", report.unprocessed)
    log.info("exception stats    :: %s", report.exceptions)
    log.info("anomaly breakdown  :: %s", report.anomaly_breakdown)


def summary_metrics(batch: graphite.MetricBatch, report: RunReport, algorithms: Iterable[str],
                    mirage: set[str] | None, sent_to_mirage: int) -> None:
    """The run's figures, a count for every exception kind and for every one of ``algorithms`` (docs/analyzer.md).

    Zeros are sent as well (v1.2.8 sent only non-zero exception counts and the algorithms that voted), so a
    graph shows 0 rather than a gap (docs/graphite.md#zeros-not-gaps). ``unprocessed`` is sent every run too.
    """
    batch.add("run_time", f"{report.run_time:.2f}")
    batch.add("total_analyzed", report.total_analyzed)
    batch.add("total_anomalies", report.total_anomalies)
    batch.add("total_metrics", report.total_metrics)
    batch.add("unprocessed", report.unprocessed)
    for kind in ExceptionKind:
        batch.add(f"exceptions.{kind}", report.exceptions.get(kind, 0))
    for algorithm in dict.fromkeys([*algorithms, *report.anomaly_breakdown]):
        batch.add(f"anomaly_breakdown.{algorithm}", report.anomaly_breakdown.get(algorithm, 0))
    if mirage is not None:
        batch.add("sent_to_mirage", sent_to_mirage)
        batch.add("mirage_metrics", len(mirage))
