"""The NAB protocol replayed from every row's complete ensemble: second stages and their ceilings in seconds.

``benchmarks/nab.py`` runs the engine at every row with the early exit and the 12 h expiry, so each
detector costs a full pass (about 20 s on two idle cores). The votes of a row do not depend on the
detector, only whether the row is analysed does (the expiry after a *reported* detection). So this script
computes once, with no early exit and no expiry, the complete ensemble of every row (about 100 s on two
cores; cached in a ``.npz`` file), then replays the protocol row by row for any candidate level and any
re-check: a row is analysed unless a detection was reported within ``EXPIRY``, the first stage flags it at
``CONSENSUS``, it is a candidate when flagged or when at least ``min_votes`` of the algorithms the first
stage's early exit would have run voted True (a vote that raised is not a False, as in the consensus), and
the re-check decides.

It prints, standard / reward low FP / reward low FN:

* the faithful default (equal to ``benchmarks/nab.py``'s, and to NAB's own scorer);
* the oracle ceilings: a re-check that knows the labels (every candidate outside a window dropped), with
  candidates at every level from ``CONSENSUS`` votes down to 1: no re-check of those candidates can score
  more;
* the second stage (``nab.stage_recheck``: ``second_stage.judge``) at the same candidate levels
  (``SECOND_STAGE_MIN_VOTES``);
* with ``--windows``, each labelled window the default misses and the earliest row in it (as a share of the
  window) with at least 5, 4, 3, 2 and 1 votes (among those the early exit lets run):
  a window with no candidate cannot be found by any re-check.

    .venv/bin/python benchmarks/nab_replay.py NAB_DIR [--cache votes.npz] [--windows]

The candidates are the daemon's: the votes are counted among the algorithms the early exit at ``CONSENSUS``
lets run (``faithful_votes``), as the worker counts them in its verdicts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nab
from nab_scoring import PROFILES, Truth, corpus_score

from skyline_analyzer.detection import engine

#: A vote as cached: True 1, False 0, raised -1; a row the filters rejected (or the first) holds -2.
TRUE, FALSE, RAISED, NOT_ANALYSED = 1, 0, -1, -2

#: (file index, row, flagged by the first stage) -> reported.
Check = Callable[[int, int, bool], bool]


def ensembles(files: Sequence[nab.DataFile]) -> list[np.ndarray]:
    """Per file, every row's complete ensemble (rows x algorithms, int8), the history up to the row."""
    settings = nab.detector_settings("fast").replace(RUN_OPTIMIZED_WORKFLOW=False)
    width = len(settings.ALGORITHMS)
    votes = [np.full((f.values.shape[0], width), NOT_ANALYSED, dtype=np.int8) for f in files]
    for length in range(1, max(f.values.shape[0] for f in files) + 1):
        by_now: dict[float, list[int]] = {}
        for k, f in enumerate(files):
            if f.values.shape[0] >= length:
                by_now.setdefault(float(f.timestamps[length - 1]), []).append(k)
        for now, group in by_now.items():
            batch = [nab._history(files[k], length) for k in group]
            for k, outcome in zip(group, engine.analyse(batch, [files[k].name for k in group], settings, now),
                                  strict=True):
                if outcome.verdict is not None:
                    votes[k][length - 1] = [RAISED if v is None else int(v) for v in outcome.verdict.ensemble]
    return votes


def _ensembles_job(job: tuple[Path, list[str]]) -> list[np.ndarray]:
    root, names = job
    return ensembles([nab.read_file(root, n) for n in names])


def cached_ensembles(root: Path, names: list[str], files: Sequence[nab.DataFile], cache: Path | None,
                     workers: int) -> list[np.ndarray]:
    """The ensembles from ``cache`` when it holds every file, else computed (and written to ``cache``)."""
    keys = [n.replace("/", "__") for n in names]
    if cache is not None and cache.is_file():
        with np.load(cache) as stored:
            if all(k in stored for k in keys):
                return [stored[k] for k in keys]
    groups = nab.balanced(files, workers)
    with Pool(len(groups)) as pool:
        results = pool.map(_ensembles_job, [(root, [names[k] for k in g]) for g in groups])
    votes: list[np.ndarray] = [np.empty(0)] * len(files)
    for group, found in zip(groups, results, strict=True):
        for k, one in zip(group, found, strict=True):
            votes[k] = one
    if cache is not None:
        np.savez_compressed(cache, **dict(zip(keys, votes, strict=True)))
    return votes


def faithful_votes(ensemble: np.ndarray, consensus: int) -> np.ndarray:
    """Per row, the votes (True or raised) among the algorithms the first stage's early exit lets run: each
    algorithm runs while the row has fewer than ``N - consensus + 1`` Falses (the first always runs)."""
    falses = np.cumsum(ensemble == FALSE, axis=1)
    runs = np.ones(ensemble.shape, dtype=bool)
    runs[:, 1:] = falses[:, :-1] < ensemble.shape[1] - consensus + 1
    return ((ensemble != FALSE) & runs).sum(axis=1)


def replay(files: Sequence[nab.DataFile], votes: Sequence[np.ndarray], consensus: int,
           check: Check | None = None, min_votes: int | None = None) -> list[np.ndarray]:
    """Per file, the protocol's anomaly scores: the faithful default, or ``check`` on the candidates (the
    flagged rows and those with at least ``min_votes`` votes among the algorithms the early exit ran)."""
    scores = []
    for k, (data, ensemble) in enumerate(zip(files, votes, strict=True)):
        width = ensemble.shape[1]
        falses = (ensemble == FALSE).sum(axis=1)
        analysed = ensemble[:, 0] != NOT_ANALYSED
        flagged = analysed & (falses <= width - consensus)
        candidate = flagged if min_votes is None else flagged | (
            analysed & (faithful_votes(ensemble, consensus) >= min_votes))
        score = np.zeros(data.values.shape[0])
        last = -np.inf
        for row in np.flatnonzero(candidate):
            if data.timestamps[row] - last < nab.EXPIRY:
                continue
            if check is None and not flagged[row]:
                continue
            if check is not None and not check(k, int(row), bool(flagged[row])):
                continue
            score[row] = 1.0
            last = data.timestamps[row]
        scores.append(score)
    return scores


def stage_check(files: Sequence[nab.DataFile], **overrides: object) -> Check:
    """The second stage as ``benchmarks/nab.py`` runs it (``nab.stage_recheck``), settings overridden."""
    recheck = nab.stage_recheck(nab.detector_settings("fast").replace(**overrides))

    def check(k: int, row: int, flagged: bool) -> bool:
        data = files[k]
        return recheck(k, row, data.timestamps[: row + 1], data.values[: row + 1], flagged)

    return check


def print_missed_windows(names: Sequence[str], truths: Sequence[Truth], votes: Sequence[np.ndarray],
                         default: Sequence[np.ndarray], consensus: int) -> None:
    levels = range(consensus, 0, -1)
    for name, truth, ensemble, score in zip(names, truths, votes, default, strict=True):
        analysed = ensemble[:, 0] != NOT_ANALYSED
        found = np.where(analysed, faithful_votes(ensemble, consensus), 0)
        for left, right in truth.windows:
            if score[left : right + 1].any():
                continue
            size = right - left + 1
            cells = []
            for needed in levels:
                rows = np.flatnonzero(found[left : right + 1] >= needed)
                cells.append(f"{rows[0] / size:.2f} ({rows.shape[0]})" if rows.shape[0] else "-")
            print(f"  {name[:50]:<50} [{left}, {right}]  " + "  ".join(
                f">={n}: {c:<11}" for n, c in zip(levels, cells, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("nab_dir", type=Path)
    parser.add_argument("--cache", type=Path, default=None,
                        help="a .npz file holding the ensembles: read when complete, else written")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--windows", action="store_true", help="list the windows the default misses")
    args = parser.parse_args(argv)
    root: Path = args.nab_dir
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    names = sorted(n for n in windows if (root / "data" / n).is_file())
    files = [nab.read_file(root, n) for n in names]
    truths = nab.read_truths(root, files)
    started = time.perf_counter()
    votes = cached_ensembles(root, names, files, args.cache, args.workers)
    print(f"{len(files)} files, {sum(len(t.windows) for t in truths)} windows; ensembles of every row in "
          f"{time.perf_counter() - started:.1f} s")
    consensus = nab.detector_settings("fast").CONSENSUS
    inside = nab.inside_windows(truths)

    def oracle(k: int, row: int, _flagged: bool) -> bool:
        return bool(inside[k][row])

    def show(label: str, scores: list[np.ndarray]) -> None:
        row = [corpus_score(truths, scores, profile).score for profile in PROFILES]
        detections = int(sum(s.sum() for s in scores))
        print(f"{label:>42}: " + " / ".join(f"{r:.2f}" for r in row)
              + f"  {detections} detections ({nab.false_positives(truths, scores)} outside windows)", flush=True)

    default = replay(files, votes, consensus)
    show("faithful default", default)
    for level in range(consensus, 0, -1):
        show(f"oracle, candidates >= {level} votes", replay(files, votes, consensus, oracle, level))
    check = stage_check(files)
    for level in range(consensus, 0, -1):
        show(f"second stage, candidates >= {level} votes", replay(files, votes, consensus, check, level))
    if args.windows:
        print("windows the faithful default misses: the earliest row with at least N votes (share of the window, rows)")
        print_missed_windows(names, truths, votes, default, consensus)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
