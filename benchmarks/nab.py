"""The Numenta Anomaly Benchmark (NAB) with this project's engine: the earthgecko detector protocol.

Each data file is fed one row at a time; at each row the whole history so far is analysed (the
consensus of ``ALGORITHMS``, ``now`` being the row's own timestamp) and the row's anomaly score is 1 on
an anomalous verdict, else 0. After a detection, rows within ``EXPIRY`` seconds (12 h) are not analysed
and score 0, as earthgecko's NAB detector does (Skyline does not re-alert a metric within its
expiration time). The scores are then scored as the NAB paper describes (``benchmarks/nab_scoring.py``)
and the three profiles' scores printed with the wall time.

Speed: the files are shared between two worker processes (balanced by the square of their lengths,
the cost of re-analysing every history); a worker advances all its files one row at a time, so each
step is one batch of equal-length histories for the fast engine.

    .venv/bin/python benchmarks/nab.py NAB_DIR [--second-stage] [--oracle] [--engine fast|reference] [--workers 2]

``NAB_DIR`` holds ``data/<category>/<file>.csv`` and ``labels/combined_windows.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from calendar import timegm
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from nab_scoring import PROFILES, Truth, corpus_score  # noqa: E402

from skyline_analyzer.config import Settings  # noqa: E402
from skyline_analyzer.detection import engine, second_stage  # noqa: E402
from skyline_analyzer.detection.series import Series  # noqa: E402

#: Seconds after a detection during which the detector scores 0 without analysing.
EXPIRY = 43200
#: The earthgecko NAB detector's ensemble: v1.2.8's algorithms without grubbs and ks_test, 5 of 7.
NAB_ALGORITHMS = [
    "histogram_bins", "first_hour_average", "stddev_from_average", "mean_subtraction_cumulation",
    "median_absolute_deviation", "stddev_from_moving_average", "least_squares",
]


#: History points whose analysis costs as much as one engine call's overhead (measured: see ``balanced``).
COST_POINTS = 75_000


@dataclass(frozen=True)
class DataFile:
    """One NAB file: its path relative to ``data/``, epoch timestamps (UTC) and values."""

    name: str
    timestamps: np.ndarray
    values: np.ndarray


def epoch(text: str) -> int:
    """``YYYY-MM-DD HH:MM:SS[.ffffff]`` read as UTC, in whole seconds."""
    return timegm(time.strptime(text[:19], "%Y-%m-%d %H:%M:%S"))


def read_file(root: Path, name: str) -> DataFile:
    with (root / "data" / name).open(newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    timestamps = np.array([epoch(row[0]) for row in rows], dtype=np.float64)
    return DataFile(name, timestamps, np.array([float(row[1]) for row in rows]))


def detector_settings(engine_name: str) -> Settings:
    """The engine as the earthgecko NAB detector ran the algorithms: no filters, 5 of 7."""
    return Settings({
        "ALGORITHMS": NAB_ALGORITHMS, "CONSENSUS": 5, "ANALYZER_ENGINE": engine_name,
        "ENABLE_ALGORITHM_RUN_METRICS": False,
    })


#: A second stage: (file index, row index, timestamps, values, flagged by the first stage) -> reported.
Recheck = Callable[[int, int, np.ndarray, np.ndarray, bool], bool]


def detect(files: Sequence[DataFile], settings: Settings, recheck: Recheck | None = None,
           min_votes: int | None = None) -> list[np.ndarray]:
    """Per file, the anomaly score of each row under the protocol (files advance together, row by row).

    With ``recheck``, the candidates are the flagged rows and the rows with at least ``min_votes`` votes
    among the algorithms the early exit let run (as the daemon finds them: the first stage unchanged), each
    reported only if ``recheck`` says so.
    """
    width = len(settings.ALGORITHMS)
    least = settings.CONSENSUS if recheck is None or min_votes is None else min(min_votes, settings.CONSENSUS)
    scores = [np.zeros(f.values.shape[0]) for f in files]
    last_detection = [-np.inf] * len(files)
    for length in range(1, max(f.values.shape[0] for f in files) + 1):
        due = [
            k for k, f in enumerate(files)
            if f.values.shape[0] >= length and f.timestamps[length - 1] - last_detection[k] >= EXPIRY
        ]
        if not due:
            continue
        # ``now`` is each history's last timestamp (first_hour_average's reference, as in the detector):
        # one engine call per distinct ``now``; files sharing a time axis share the call.
        by_now: dict[float, list[int]] = {}
        for k in due:
            by_now.setdefault(float(files[k].timestamps[length - 1]), []).append(k)
        for now, group in by_now.items():
            batch = [_history(files[k], length) for k in group]
            outcomes = engine.analyse(batch, [files[k].name for k in group], settings, now)
            for k, one, outcome in zip(group, batch, outcomes, strict=True):
                verdict = outcome.verdict
                if verdict is None or width - verdict.ensemble.count(False) < least:
                    continue
                if recheck is None and not verdict.anomalous:
                    continue
                if recheck is not None and not recheck(k, length - 1, one.timestamps, one.values, verdict.anomalous):
                    continue
                scores[k][length - 1] = 1.0
                last_detection[k] = now
    return scores


def _history(data: DataFile, length: int) -> Series:
    """The first ``length`` rows as a series (views, not copies)."""
    return Series(data.timestamps[:length], data.values[:length], float(data.timestamps[length - 1]),
                  float(data.values[length - 1]))


def read_truths(root: Path, files: Sequence[DataFile]) -> list[Truth]:
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    return [
        Truth.from_timestamps(f.timestamps.astype(np.int64).tolist(),
                              [(epoch(a), epoch(b)) for a, b in windows[f.name]])
        for f in files
    ]


def balanced(files: Sequence[DataFile], workers: int) -> list[list[int]]:
    """File indices in ``workers`` groups of about equal cost, longest first.

    A row costs the engine's per-call overhead (about 0.3 ms) plus work linear in the history's length
    (about 4 ns a point): a file of ``n`` rows costs about ``n + n**2 / COST_POINTS`` row-overheads.
    """
    groups: list[list[int]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for k in sorted(range(len(files)), key=lambda k: -files[k].values.shape[0]):
        least = loads.index(min(loads))
        groups[least].append(k)
        rows = files[k].values.shape[0]
        loads[least] += rows + rows * rows // COST_POINTS
    return [g for g in groups if g]


#: The detectors the benchmark can score: the faithful default, the second stage, the oracle ceilings.
DETECTORS = ("faithful default", "second stage", "oracle, flags", "oracle, candidates")


def _detect_group(job: tuple[Path, list[str], str, str]) -> list[np.ndarray]:
    root, names, engine_name, detector = job
    files = [read_file(root, n) for n in names]
    settings = detector_settings(engine_name)
    if detector == "faithful default":
        return detect(files, settings)
    if detector == "second stage":
        return detect(files, settings, stage_recheck(settings), settings.SECOND_STAGE_MIN_VOTES)
    truths = read_truths(root, files)
    oracle = _oracle(truths)
    return detect(files, settings, oracle,
                  settings.SECOND_STAGE_MIN_VOTES if detector.endswith("candidates") else settings.CONSENSUS)


def stage_recheck(settings: Settings) -> Recheck:
    """The second stage as the worker runs it (``second_stage.judge``), with ``settings``' ``SECOND_STAGE_*``,
    on the history Horizon would keep (``SECOND_STAGE_DURATION`` up to the row, downsampled) and the last
    day: a flagged row re-checked by ``seasonal_nearest``, a nearly flagged one by ``seasonal_nearest`` then
    ``deseasonalised_ensemble`` with the detector's ensemble."""
    parameters = second_stage.Parameters.from_settings(settings)

    def recheck(_file: int, _row: int, timestamps: np.ndarray, values: np.ndarray, flagged: bool) -> bool:
        now = float(timestamps[-1])
        lo = int(np.searchsorted(timestamps, now - parameters.duration))
        history = second_stage.downsample(timestamps[lo:], values[lo:], parameters.resolution)
        day = int(np.searchsorted(timestamps, now - settings.FULL_DURATION, side="right"))
        candidate = second_stage.Candidate("nab", history, (timestamps[day:], values[day:]), flagged)
        decision = second_stage.judge([candidate], parameters, settings, now)[0]
        return flagged if decision is None else decision.anomalous

    return recheck


def inside_windows(truths: Sequence[Truth]) -> list[np.ndarray]:
    """Per file, which rows lie in a labelled window."""
    inside = []
    for truth in truths:
        rows = np.zeros(truth.rows, dtype=bool)
        for left, right in truth.windows:
            rows[left : right + 1] = True
        inside.append(rows)
    return inside


def _oracle(truths: Sequence[Truth]) -> Recheck:
    """A second stage that knows the labels: every candidate outside a window is dropped (the ceiling)."""
    inside = inside_windows(truths)
    return lambda file, row, _t, _v, _flagged: bool(inside[file][row])


def false_positives(truths: Sequence[Truth], scores: Sequence[np.ndarray]) -> int:
    """Detections outside every window (the probationary period included)."""
    count = 0
    for truth, score in zip(truths, scores, strict=True):
        detected = score > 0
        for left, right in truth.windows:
            detected[left : right + 1] = False
        count += int(detected.sum())
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("nab_dir", type=Path)
    parser.add_argument("--engine", choices=("fast", "reference"), default="fast")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--second-stage", action="store_true", help="also score with the second stage")
    parser.add_argument("--oracle", action="store_true",
                        help="also score the oracle ceilings: every false positive of the flags, or of the "
                             "second stage's candidates (SECOND_STAGE_MIN_VOTES), removed")
    args = parser.parse_args(argv)
    root: Path = args.nab_dir
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    names = sorted(n for n in windows if (root / "data" / n).is_file())
    files = [read_file(root, n) for n in names]
    truths = read_truths(root, files)
    print(f"{len(files)} files, {sum(len(t.windows) for t in truths)} windows, "
          f"{sum(f.values.shape[0] for f in files)} rows; {args.workers} workers, engine {args.engine}")
    chosen = [DETECTORS[0], *DETECTORS[1:2] * args.second_stage, *DETECTORS[2:] * args.oracle]
    for detector in chosen:
        started = time.perf_counter()
        groups = balanced(files, args.workers)
        jobs = [(root, [names[k] for k in g], args.engine, detector) for g in groups]
        with Pool(len(jobs)) as pool:
            results = pool.map(_detect_group, jobs)
        scores: list[np.ndarray] = [np.empty(0)] * len(files)
        for group, group_scores in zip(groups, results, strict=True):
            for k, s in zip(group, group_scores, strict=True):
                scores[k] = s
        wall = time.perf_counter() - started
        row = [corpus_score(truths, scores, profile) for profile in PROFILES]
        detections = int(sum(s.sum() for s in scores))
        false = false_positives(truths, scores)
        print(f"{detector:>19}: " + " / ".join(f"{r.score:.2f}" for r in row)
              + f"  (standard / reward_low_FP_rate / reward_low_FN_rate), {detections} detections "
              f"({false} outside windows), {wall:.1f} s wall", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
