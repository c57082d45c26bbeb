"""What a worker records of its run for ``skyline-analyzer tune`` (docs/analyzer-optimizations.md#tune).

With ``TUNE_SAMPLE_SIZE`` > 0 a worker's run-metric recorder is a :class:`TuneRecorder`. Besides the
timing files it keeps, for the worker's share of the run:

* per algorithm, the times it ran, its True and None votes (from the ensembles: an algorithm the early
  exit skipped did not run) and, with ``ENABLE_ALGORITHM_RUN_METRICS``, the seconds it took as the engine
  measured them (the reference engine times each call; the fast engine divides a block's interval among
  the rows that ran the algorithm);
* a uniform sample of ``TUNE_SAMPLE_SIZE`` analysed series (bottom-k of one random key per series), whose
  vote vectors are completed at the end of the run: the series the early exit cut short are analysed
  again, all together, by the engine in force with every algorithm run (untimed, unrecorded). Triggers
  are correlated, so the expected cost of another order needs whole vectors, not per-algorithm rates.
  A worker holds at most ``TUNE_SAMPLE_SIZE`` decoded series for this, and at most one counter per
  distinct ensemble (3**9 for nine algorithms).

At the end of the run :func:`store` pushes one JSON record to the ``keys.ANALYZER_TUNE`` list and trims the
list to ``TUNE_HISTORY_RUNS × ANALYZER_PROCESSES`` records. The record carries the seconds spent on all
of this, so ``tune`` reports what recording costs.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import redis

from skyline_analyzer import keys
from skyline_analyzer.analyzer.run_metrics import RunMetricsRecorder
from skyline_analyzer.config import Settings
from skyline_analyzer.detection import engine
from skyline_analyzer.detection.engine import Outcome
from skyline_analyzer.detection.reference import Vote, early_exit_enabled
from skyline_analyzer.detection.series import Series

log = logging.getLogger(__name__)

#: The record format's version; ``tune`` skips records of any other.
RECORD_VERSION = 1
#: A vote in a sampled vector: True, False, None (the algorithm raised).
VOTE_CODES = {True: "T", False: "F", None: "N"}


class TuneRecorder(RunMetricsRecorder):
    """A worker's run-metric recorder that also keeps what ``tune`` needs (see the module docstring)."""

    def __init__(self, tmp_dir: str | Path, settings: Settings, now: float, seed: int | None = None) -> None:
        super().__init__(tmp_dir)
        self.settings, self.now = settings, now
        self.algorithms = list(settings.ALGORITHMS)
        self._column = {name: column for column, name in enumerate(self.algorithms)}
        self._timed_runs = [0] * len(self.algorithms)
        self._seconds = [0.0] * len(self.algorithms)
        self._ensembles: Counter[tuple[Vote, ...]] = Counter()
        self._random = np.random.default_rng(seed)
        # (key, series, full name, ensemble) of the sampled series, smallest keys kept.
        self._sample: list[tuple[float, Series, str, list[Vote]]] = []
        self._spent = 0.0

    @property
    def analysed(self) -> int:
        """Series that reached the ensemble so far."""
        return sum(self._ensembles.values())

    def record(self, algorithm: str, seconds: float, runs: int = 1) -> None:
        column = self._column.get(algorithm)
        if column is not None:
            self._timed_runs[column] += runs
            self._seconds[column] += seconds * runs
        super().record(algorithm, seconds, runs)

    def observe(self, series: Sequence[Series], outcomes: Sequence[Outcome | None]) -> None:
        """Count the ensembles of a chunk's analysed series and offer those series to the sample."""
        started = time.perf_counter()
        kept = [i for i, outcome in enumerate(outcomes) if outcome is not None and outcome.verdict is not None]
        ensembles = [outcomes[i].verdict.ensemble for i in kept]  # type: ignore[union-attr]
        # One tuple per series into a Counter: the cheapest exact count found (about 1 µs a series).
        self._ensembles.update(map(tuple, ensembles))
        size = self.settings.TUNE_SAMPLE_SIZE
        if kept and size:
            drawn = self._random.random(len(kept))
            threshold = self._sample[-1][0] if len(self._sample) >= size else 1.0
            for position in np.flatnonzero(drawn < threshold).tolist():
                index = kept[position]
                one = series[index]
                # A copy: a decoded series is a row of its chunk's arrays, which it would keep alive.
                kept_series = Series(one.timestamps.copy(), one.values.copy(), one.last_timestamp, one.last_value)
                self._sample.append((float(drawn[position]), kept_series, outcomes[index].name,  # type: ignore[union-attr]
                                     list(ensembles[position])))
            self._sample.sort(key=lambda entry: entry[0])
            del self._sample[size:]
        self._spent += time.perf_counter() - started

    def record_of_run(self) -> dict[str, Any]:
        """The run's record, the sampled vectors completed (see the module docstring)."""
        started = time.perf_counter()
        width = len(self.algorithms)
        runs, true, none = [0] * width, [0] * width, [0] * width
        analysed = 0
        for ensemble, count in self._ensembles.items():
            if len(ensemble) != width:
                continue  # a failed second-order check leaves no ensemble
            analysed += count
            for column in range(self._ran(ensemble)):
                runs[column] += count
                true[column] += count * (ensemble[column] is True)
                none[column] += count * (ensemble[column] is None)
        sample = ["".join(VOTE_CODES[vote] for vote in ensemble) for ensemble in self._completed()]
        spent = self._spent + time.perf_counter() - started
        return {
            "version": RECORD_VERSION, "run": self.now, "engine": self.settings.ANALYZER_ENGINE,
            "algorithms": self.algorithms, "consensus": self.settings.CONSENSUS,
            "early_exit": early_exit_enabled(self.settings), "analysed": analysed,
            "runs": runs, "true": true, "none": none, "timed_runs": self._timed_runs,
            "seconds": [round(seconds, 9) for seconds in self._seconds], "sample": sample,
            "record_seconds": round(spent, 6),
        }

    def _ran(self, ensemble: Sequence[Vote]) -> int:
        """How many algorithms ran, in order, before the early exit stopped the ensemble."""
        if not early_exit_enabled(self.settings):
            return len(ensemble)
        max_false = len(self.algorithms) - self.settings.CONSENSUS + 1
        falses = 0
        for position, vote in enumerate(ensemble):
            falses += vote is False
            if falses >= max_false:
                return position + 1
        return len(ensemble)

    def _completed(self) -> list[list[Vote]]:
        """The sampled ensembles with every algorithm's vote: those the early exit cut short are analysed
        again, together, by the engine in force with every algorithm run (untimed, nothing recorded)."""
        width = len(self.algorithms)
        cut = [(one, name) for _, one, name, ensemble in self._sample if self._ran(ensemble) < width]
        every = self.settings.replace(RUN_OPTIMIZED_WORKFLOW=False, ENABLE_ALGORITHM_RUN_METRICS=False)
        again = iter(engine.analyse([one for one, _ in cut], [name for _, name in cut], every, self.now)
                     if cut else [])
        completed = []
        for _, _, _, ensemble in self._sample:
            if self._ran(ensemble) == width:
                completed.append(ensemble)
                continue
            verdict = next(again).verdict
            # The same series at the same time: only a broken detector could filter it out this time.
            if verdict is not None and len(verdict.ensemble) == width:
                completed.append(list(verdict.ensemble))
        return completed


def recorder(settings: Settings, now: float) -> RunMetricsRecorder:
    """The worker's recorder: a :class:`TuneRecorder` when ``TUNE_SAMPLE_SIZE`` > 0."""
    tmp_dir = Path(settings.SKYLINE_TMP_DIR)
    return TuneRecorder(tmp_dir, settings, now) if settings.TUNE_SAMPLE_SIZE else RunMetricsRecorder(tmp_dir)


def observe(recorder: RunMetricsRecorder, series: Sequence[Series], outcomes: Sequence[Outcome | None]) -> None:
    """Hand a chunk's outcomes to ``recorder`` if it records for ``tune``."""
    if isinstance(recorder, TuneRecorder):
        recorder.observe(series, outcomes)


def store(recorder: RunMetricsRecorder, conn: Any) -> None:
    """Push the run's record and trim the history; a Redis failure loses this record only (logged)."""
    if not isinstance(recorder, TuneRecorder) or not recorder.analysed:
        return
    settings = recorder.settings
    try:
        payload = json.dumps(recorder.record_of_run(), separators=(",", ":"))
    except Exception:
        # Recording must never cost the run its report: the worker's counts still reach the parent.
        log.error("error :: could not build the run's tune record", exc_info=True)
        return
    try:
        pipe = conn.pipeline(transaction=False)
        pipe.lpush(keys.ANALYZER_TUNE, payload)
        pipe.ltrim(keys.ANALYZER_TUNE, 0, settings.TUNE_HISTORY_RUNS * settings.ANALYZER_PROCESSES - 1)
        pipe.execute()
    except (redis.RedisError, OSError) as exc:
        log.error("error :: could not store the run's tune record in %s: %s", keys.ANALYZER_TUNE, exc)
