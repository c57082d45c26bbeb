"""Batched evaluation of the consensus algorithms: the fast engine's ensembles, identical to the reference.

The reference (:func:`skyline_analyzer.detection.reference.run_selected_algorithm`) analyses one series at a time.
Here the series of a batch are grouped by length into blocks, C-contiguous ``(rows, length)`` float64
arrays, and each algorithm is evaluated across a block at once, in ``ALGORITHMS`` order, with the early
exit applied per series: once a series has ``N - CONSENSUS + 1`` Falses it leaves the block's active rows
and its remaining algorithms are recorded as False, not computed and not timed, exactly as in the
reference.

Exactness. A vote is a boolean threshold test that can be decided within one ulp, so every batched
statistic is computed with the *same floating-point operations in the same order* as the reference:

* sums, means and standard deviations reduce along the last (contiguous) axis, where numpy applies its
  pairwise summation to each row exactly as to a 1-D array (``tests/test_batch_exact.py`` checks the
  intermediate statistics bit for bit);
* medians come from ``np.median(axis=1)``, which selects the same order statistics;
* ``histogram_bins`` rebuilds numpy's bin edges (``linspace``) with the same arithmetic, and counts only
  the bin the tail falls in by comparison with those edges; numpy's own index arithmetic agrees with
  the edges whenever a bin is wider than ``2**-40`` of the data's magnitude;
* ``stddev_from_moving_average`` uses per-row ``np.dot`` with cached weights (a batched matrix product
  accumulates in a different order, so it is not used);
* ``least_squares`` is the exception: its closed-form fit is not ``lstsq``'s arithmetic, so it decides
  only the rows whose vote is clear by a margin that bounds the difference;
* ``stddev_from_average`` and ``grubbs`` first bound the squared deviations between two numbers from one
  dot product per row, and decide there the rows whose vote both bounds give; the others use the exact
  sum above (:func:`skyline_analyzer.detection.batched._squares_interval`).

A row the batched arithmetic cannot decide exactly is *deferred*: its vote comes from the reference
detector on the original series. That is the exactness fallback, and it fires for: histograms with bins
narrower than ``2**-40`` of the magnitude (constant-but-for-an-ulp data), ``ks_test`` when its ADF step
leaves the lag choice or the 5 % decision within a bound of statsmodels' rounding
(:mod:`skyline_analyzer.detection.adf`), and ``least_squares`` when its closed-form fit leaves the vote
within a bound of ``lstsq``'s rounding (see :func:`least_squares`).
:func:`evaluate` counts the fallbacks per algorithm in the ``deferred`` counter it is given (the benchmarks
report them).

Run metrics: an algorithm evaluated for a block costs one wall-clock interval; that interval is divided
evenly among the rows that ran it, and each of those rows records its share, so the count of runs per
algorithm is the reference's count and the total time is the time actually spent.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

import numpy as np

from skyline_analyzer.config import Settings
from skyline_analyzer.detection import single
from skyline_analyzer.detection.batched import BATCHED, DEFER, FALSE, NONE, TRUE, Block, count_true, seed_means
from skyline_analyzer.detection.reference import Recorder, Verdict, early_exit_enabled, run_algorithm
from skyline_analyzer.detection.series import Series
from skyline_analyzer.exceptions import ExceptionKind

#: Python votes indexed by ``code + 1``, as objects, so that a whole block converts in one step.
_VOTES = np.array([None, False, True], dtype=object)

def boring(values: np.ndarray, max_boredom: int, boredom_set_size: int) -> np.ndarray:
    """Per row (of a 2-D array; a 1-D array is one row): exactly ``boredom_set_size`` distinct values among
    the last ``max_boredom``."""
    window = np.sort(values[..., -max_boredom:], axis=-1)
    distinct = 1 + count_true(window[..., 1:] != window[..., :-1])
    return distinct == boredom_set_size


#: One series' fate: the filter exception that stopped it, or its verdict.
Result = ExceptionKind | Verdict


#: Bytes of one block's values array: small enough to stay in cache across the algorithms (about 360
#: series of 1,440 points), large enough that numpy's per-call overhead is shared by many series.
BLOCK_BYTES = 4 << 20
#: An algorithm whose active rows are at least this share of the block runs on the whole block (and
#: the inactive rows' results are dropped) rather than copying the active rows out.
WHOLE_BLOCK_SHARE = 0.5
#: A length shared by fewer series than this (gappy and short series have lengths of their own) is
#: analysed series by series (:mod:`skyline_analyzer.detection.single`): a block's fixed cost, a dozen
#: numpy calls per algorithm, is then more than the scalar forms cost per series. Measured on the varied
#: corpus of benchmarks/algorithms.py (docs/analyzer-optimizations.md): blocks of 2, 4 and 6 rows cost
#: 2.5, 1.5 and 1.15 times the series alone; 8 rows about the same.
ALONE_BELOW = 6


def evaluate(
    series: Sequence[Series],
    names: Sequence[str],
    settings: Settings,
    now: float,
    *,
    recorder: Recorder | None = None,
    deferred: Counter[str] | None = None,
) -> list[Result]:
    """Filters (TooShort, Stale, Boring, in that order) and verdicts for every series, in order.

    ``names`` are full keys (used for error reports); ``recorder`` receives run times and errors,
    ``deferred`` the count of rows left to the reference per algorithm. A verdict is the consensus of
    :func:`skyline_analyzer.detection.reference.consensus`, counted for a whole block at once.
    """
    results: list[Result | None] = [None] * len(series)
    by_length: dict[int, list[int]] = {}
    min_length, stale_period = settings.MIN_TOLERABLE_LENGTH, settings.STALE_PERIOD
    for index, one in enumerate(series):
        length = one.values.shape[0]
        if length < min_length:
            results[index] = ExceptionKind.TOO_SHORT
        elif now - one.last_timestamp > stale_period:
            results[index] = ExceptionKind.STALE
        else:
            by_length.setdefault(length, []).append(index)
    for length, same_length in by_length.items():
        if len(same_length) < ALONE_BELOW:
            for index in same_length:
                results[index] = _alone(series[index], names[index], settings, now, recorder, deferred)
            continue
        block_rows = max(1, BLOCK_BYTES // (8 * length))
        for start in range(0, len(same_length), block_rows):
            indices = same_length[start : start + block_rows]
            block_series = [series[i] for i in indices]
            block = Block(
                series=block_series,
                names=[names[i] for i in indices],
                timestamps=_stack(block_series, "timestamps", length),
                values=_stack(block_series, "values", length),
                now=now,
                full_duration=settings.FULL_DURATION,
                recorder=recorder,
                deferred=deferred,
            )
            sums = [one.value_sum for one in block_series]
            if None not in sums:
                seed_means(block, np.array(sums))
            for index, result in zip(indices, evaluate_block(block, settings), strict=True):
                results[index] = result
    return results  # type: ignore[return-value]


def _alone(one: Series, name: str, settings: Settings, now: float, recorder: Recorder | None,
           deferred: Counter[str] | None) -> Result:
    """A series with a length of its own: the Boring filter, then :func:`single.evaluate` (no block)."""
    if boring(one.values, settings.MAX_TOLERABLE_BOREDOM, settings.BOREDOM_SET_SIZE):
        return ExceptionKind.BORING
    return single.evaluate(one, name, settings, now, recorder, deferred)


def _stack(series: list[Series], which: str, length: int) -> np.ndarray:
    """The ``which`` arrays (``'timestamps'`` or ``'values'``) of equal-length series as the rows of a
    C-contiguous 2-D array, read-only.

    The decoder (:func:`skyline_analyzer.codec.decode_many`) returns a chunk's series as rows of one 2-D
    array per group (:attr:`Series.row`); when ``series`` are consecutive rows of one such array, that part of
    it is returned as it is (a view: no copy of the chunk). Otherwise one concatenation into a new array.
    """
    rows = [getattr(one, which) for one in series]
    base, first = rows[0].base, series[0].row
    if (first is not None and isinstance(base, np.ndarray) and base.ndim == 2 and base.shape[1] == length
            and base.dtype == np.float64 and base.flags.c_contiguous and first + len(rows) <= base.shape[0]
            and all(row.base is base for row in rows)
            and [one.row for one in series] == list(range(first, first + len(rows)))
            and _address(rows[0]) == _address(base[first])
            and _address(rows[-1]) == _address(base[first + len(rows) - 1])):
        view = base[first : first + len(rows)]
        view.flags.writeable = False
        return view
    stacked = np.empty((len(rows), length))
    np.concatenate(rows, out=stacked.reshape(-1))
    stacked.flags.writeable = False
    return stacked


def _address(array: np.ndarray) -> int:
    return int(array.__array_interface__["data"][0])


def evaluate_block(block: Block, settings: Settings) -> list[Result]:
    """Boring filter and verdicts of one block of equal-length series."""
    with np.errstate(all="ignore"):
        is_boring = boring(block.values, settings.MAX_TOLERABLE_BOREDOM, settings.BOREDOM_SET_SIZE)
        votes = _ensembles(block, np.flatnonzero(~is_boring), settings)
    # consensus(): at most N - CONSENSUS Falses (a None is not a False), for every row at once.
    anomalous = count_true(votes == FALSE) <= len(settings.ALGORITHMS) - settings.CONSENSUS
    return [
        ExceptionKind.BORING if row_is_boring else Verdict(row_anomalous, row_votes, one.last_value)
        for row_is_boring, row_anomalous, row_votes, one in zip(
            is_boring.tolist(), anomalous.tolist(), _VOTES[votes + 1].tolist(), block.series, strict=True)
    ]


def _ensembles(block: Block, rows: np.ndarray, settings: Settings) -> np.ndarray:
    """``(rows, N)`` vote codes: each algorithm in order over the rows still able to reach consensus."""
    algorithms = list(settings.ALGORITHMS)
    max_false = len(algorithms) - settings.CONSENSUS + 1
    early_exit = early_exit_enabled(settings)
    votes = np.full((block.values.shape[0], len(algorithms)), FALSE, dtype=np.int8)
    falses = np.zeros(block.values.shape[0], dtype=np.int64)
    timer = block.recorder if settings.ENABLE_ALGORITHM_RUN_METRICS else None
    active = rows
    for column, name in enumerate(algorithms):
        if active.shape[0] == 0:
            break
        started = time.perf_counter()
        codes = _vote(block, active, name, settings)
        if timer is not None:
            runs = int(active.shape[0])
            timer.record(name, (time.perf_counter() - started) / runs, runs)
        votes[active, column] = codes
        falses[active] += codes == FALSE
        # As in the reference, the test follows each vote: the first algorithm always runs.
        if early_exit:
            active = active[falses[active] < max_false]
    return votes


def _vote(block: Block, rows: np.ndarray, name: str, settings: Settings) -> np.ndarray:
    """One algorithm's codes for ``rows``, with every deferred row decided by the reference detector."""
    whole = rows.shape[0] >= WHOLE_BLOCK_SHARE * block.values.shape[0]
    try:
        codes = BATCHED[name](block, np.arange(block.values.shape[0]) if whole else rows)
        if whole:
            codes = codes[rows]
    except Exception:
        # Not expected for finite input; the reference then decides (and records any error) per series.
        codes = np.full(rows.shape[0], DEFER, dtype=np.int8)
    deferred = np.flatnonzero(codes == DEFER)
    if deferred.shape[0]:
        if block.deferred is not None:
            block.deferred[name] += int(deferred.shape[0])
        for position in deferred:
            row = int(rows[position])
            # Not timed: the block's interval already covers this row.
            vote = run_algorithm(name, block.series[row], settings, block.now, block.names[row], block.recorder,
                                 timed=False)
            codes[position] = NONE if vote is None else TRUE if vote else FALSE
    return codes
