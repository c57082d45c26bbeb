"""The batched detectors: each of the nine algorithms over a block of equal-length series at once.

Each function takes a :class:`Block` and the row indices to decide, and returns one vote code per row:
:data:`FALSE`, :data:`TRUE`, or :data:`DEFER` where the batched arithmetic cannot guarantee the reference's
decision (the exactness rules are in :mod:`skyline_analyzer.detection.batch` and docs/algorithms.md).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.special import stdtrit
from scipy.stats import t as student_t

from skyline_analyzer.detection.algorithms import HISTOGRAM_BINS, HISTOGRAM_RARE_COUNT
from skyline_analyzer.detection.kstest import ks_votes
from skyline_analyzer.detection.numerics import EWM_COM
from skyline_analyzer.detection.reference import Recorder
from skyline_analyzer.detection.series import Series

#: Internal vote codes of a block: False, True, the reference detector raised, and "ask the reference".
FALSE, TRUE, NONE, DEFER = 0, 1, -1, 2

#: A histogram bin narrower than this fraction of the data's magnitude is decided by the reference.
NARROW_BIN = 2.0**-40
#: ... and so is a histogram whose bins are too narrow to be normal floats with full precision.
SMALLEST_STEP = 2.0**-960


@dataclass
class Block:
    """Series of one length stacked into C-contiguous ``(rows, length)`` arrays, with cached statistics."""

    series: list[Series]
    names: list[str]
    timestamps: np.ndarray
    values: np.ndarray
    now: float
    full_duration: int
    recorder: Recorder | None = None
    #: Per-algorithm count of rows whose vote the exactness fallback took from the reference detector.
    deferred: Counter[str] | None = None
    _cache: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return int(self.values.shape[1])

    def rows_of(self, array: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``array`` restricted to ``rows``: the array itself when every row is wanted, else a copy."""
        if rows.shape[0] == array.shape[0]:
            return array
        return array[rows]

    def seed(self, name: str, values: np.ndarray) -> None:
        """A per-row statistic already known for every row (formed where the rows were made)."""
        self._cache[name] = (values, np.ones(values.shape[0], dtype=bool))

    def stat(self, name: str, rows: np.ndarray, compute: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """A per-row statistic, computed once per row (``compute`` gets the row indices still missing)."""
        if name not in self._cache:
            count = self.values.shape[0]
            self._cache[name] = (np.empty(count), np.zeros(count, dtype=bool))
        values, known = self._cache[name]
        missing = rows[~known[rows]]
        if missing.shape[0]:
            values[missing] = compute(missing)
            known[missing] = True
        return values[rows]


def count_true(mask: np.ndarray) -> np.ndarray:
    """Per row of a boolean array (along its last axis), how many elements are True, as int64.

    ``np.count_nonzero(mask, axis=1)`` converts and sums through a generic path, about four times slower:
    the bytes are summed here as small unsigned integers instead (16 bits while no row can overflow them).
    """
    wide = np.uint16 if mask.shape[-1] < 1 << 16 else np.int64
    return mask.view(np.uint8).sum(axis=-1, dtype=wide).astype(np.int64)


def tail_avg(values: np.ndarray) -> np.ndarray:
    """Per row ``(v[-1] + v[-2] + v[-3]) / 3`` (``v[-1]`` below three points), as the reference adds."""
    if values.shape[1] < 3:
        return values[:, -1].copy()
    return (values[:, -1] + values[:, -2] + values[:, -3]) / 3


def squared_deviations(values: np.ndarray, mean: np.ndarray | float) -> np.ndarray:
    """Per row (along the last axis), ``sum((v - mean)**2)`` as ``np.std`` forms it before dividing by
    ``n - ddof``: the deviations squared in place, then numpy's pairwise sum."""
    deviations = values - mean
    np.multiply(deviations, deviations, out=deviations)
    return deviations.sum(axis=-1)


def _tail(block: Block, rows: np.ndarray) -> np.ndarray:
    return block.stat("tail", rows, lambda r: tail_avg(block.rows_of(block.values, r)))


def _mean(block: Block, rows: np.ndarray) -> np.ndarray:
    """``np.mean`` per row: the pairwise row sum divided by the length."""
    return block.stat("mean", rows, lambda r: block.rows_of(block.values, r).sum(axis=1) / block.length)


def seed_means(block: Block, sums: np.ndarray) -> None:
    """The block's :func:`_mean` from row sums already formed (the decoder's ``np.add.reduce`` of the same
    rows: the same pairwise sums), divided as there."""
    block.seed("mean", sums / block.length)


def _squares(block: Block, rows: np.ndarray) -> np.ndarray:
    """The sum of squared deviations from the mean, as ``np.std`` forms it before dividing by ``n - ddof``."""

    def compute(missing: np.ndarray) -> np.ndarray:
        return squared_deviations(block.rows_of(block.values, missing), _mean(block, missing)[:, None])

    return block.stat("squares", rows, compute)


#: The bound of :func:`_squares_interval`, per point, in units of ``eps * (sum(v**2) + n * mean**2)``: the
#: error analysis gives at most about 4 (two sums of ``n`` terms, their squares and the final subtraction);
#: 16 leaves a margin on it.
_SQUARES_ERROR = 16 * 2.0**-53
#: ... plus this per point, absolute: products that underflow (values below about 1e-154) lose up to half
#: the smallest subnormal each, in both sums, where the relative bound above says nothing.
_SQUARES_FLOOR = 2.0**-1070
#: Relative allowance for the rounding of the threshold tests themselves (a square root, a product and a
#: division, each within an ulp) when a vote is decided from :func:`_squares_interval`.
_THRESHOLD_MARGIN = 2.0**-30


def _squares_interval(block: Block, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, an interval holding the exact :func:`_squares` (the reference's number), from one pass.

    ``_squares`` reads a row five times (the deviations written, squared in place, summed); the identity
    ``sum((v - m)**2) = sum(v**2) - n * m**2`` needs one dot product per row. Formed in floating point,
    it differs from the reference's sum by less than ``16 * (n + 4) * eps * (sum(v**2) + n * m**2)``
    (the sums of ``n`` non-negative terms are each within ``n * eps`` of exact; ``m``, the reference's
    mean, is the same number in both), plus :data:`_SQUARES_FLOOR` per point for products that underflow.
    That bound is relative to the squares, not to their difference: when the mean is large against the
    deviations the interval is wide and the vote is left to the exact sum. A row whose bound is not finite
    (overflow) gets the interval ``[0, inf]``: never decided here.
    """

    def compute(missing: np.ndarray) -> np.ndarray:
        values = block.rows_of(block.values, missing)
        return np.einsum("ij,ij->i", values, values)

    square_sum = block.stat("square_sum", rows, compute)
    mean = _mean(block, rows)
    n = block.length
    around = n * mean * mean
    estimate = square_sum - around
    error = (n + 4) * (_SQUARES_ERROR * (square_sum + around) + _SQUARES_FLOOR)
    low = np.maximum(estimate - error, 0.0)
    high = estimate + error
    unbounded = ~np.isfinite(high)
    low[unbounded], high[unbounded] = 0.0, np.inf
    return low, high


def _decided(surely: np.ndarray, surely_not: np.ndarray, exact: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Vote codes from an interval's verdicts: TRUE where ``surely``, FALSE where ``surely_not``, and for the
    close rows (neither) the vote ``exact`` gives from their positions (one bool each)."""
    codes = np.where(surely, TRUE, FALSE).astype(np.int8)
    close = np.flatnonzero(~(surely | surely_not))
    if close.shape[0]:
        codes[close] = np.where(exact(close), TRUE, FALSE)
    return codes


def histogram_bins(block: Block, rows: np.ndarray) -> np.ndarray:
    """Batched ``histogram_bins``: is the tail in a bin of at most 20 values (bin 0 only at the minimum)?"""
    values = block.rows_of(block.values, rows)
    tail = _tail(block, rows)
    low, high = values.min(axis=1), values.max(axis=1)
    flat = low == high
    # np.histogram widens an empty range by half a unit each side, then np.linspace builds the edges.
    first = np.where(flat, low - 0.5, low)
    last = np.where(flat, high + 0.5, high)
    step = (last - first) / HISTOGRAM_BINS
    edges = np.arange(HISTOGRAM_BINS + 1, dtype=np.float64) * step[:, None] + first[:, None]
    edges[:, -1] = last
    magnitude = np.maximum(np.abs(first), np.abs(last))
    # numpy raises (the vote is None) when the edges are not increasing; subnormal steps lose the
    # precision the argument below relies on. Both go to the reference.
    decidable = (
        np.isfinite(step)
        & (step > magnitude * NARROW_BIN)
        & (step >= SMALLEST_STEP)
        & np.all(edges[:, 1:] > edges[:, :-1], axis=1)
    )

    at_minimum = tail <= edges[:, 0]
    # With strictly increasing edges, the bin holding the tail is the last edge <= tail.
    above = count_true(edges <= tail[:, None]) - 1
    candidate = decidable & (at_minimum | ((above >= 1) & (above < HISTOGRAM_BINS)))
    index = np.where(at_minimum, 0, np.clip(above, 0, HISTOGRAM_BINS - 1))
    everywhere = np.arange(values.shape[0])
    lower = edges[everywhere, index]
    lower[index == 0] = -np.inf
    # The last bin is closed on the right; every value is <= its right edge (the maximum).
    upper = np.where(index < HISTOGRAM_BINS - 1, edges[everywhere, index + 1], np.inf)
    # Rows that cannot flag count nothing rather than being copied out of the block.
    lower[~candidate] = np.inf
    # Usually the tail sits in a crowded bin, and the last quarter of the row alone holds more than 20 of
    # its values: that settles those rows. Only the others are counted in full.
    count = _count_between(values[:, -(-values.shape[1] // 4) :], lower, upper)
    recount = np.flatnonzero(candidate & (count <= HISTOGRAM_RARE_COUNT))
    if recount.shape[0]:
        whole = values if recount.shape[0] == values.shape[0] else values[recount]
        count[recount] = _count_between(whole, lower[recount], upper[recount])
    codes = np.where(candidate & (count <= HISTOGRAM_RARE_COUNT), TRUE, FALSE).astype(np.int8)
    codes[~decidable] = DEFER
    return codes


def _count_between(values: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Per row, how many values are in ``[lower, upper)`` (with ``lower <= upper``)."""
    return count_true(values < upper[:, None]) - count_true(values < lower[:, None])


def first_hour_average(block: Block, rows: np.ndarray) -> np.ndarray:
    """Batched ``first_hour_average`` over the points older than ``now - (FULL_DURATION - 3600)``."""
    timestamps = block.rows_of(block.timestamps, rows)
    tail = _tail(block, rows)
    cutoff = block.now - (block.full_duration - 3600)
    older = timestamps < cutoff
    count = count_true(older)
    codes = np.full(rows.shape[0], FALSE, dtype=np.int8)
    # Rows with the same number of old points are decided together, each row's selection copied, in
    # order, into one C-contiguous row: exactly the reference's masked copy.
    for size in np.unique(count[count >= 2]).tolist():
        picked = np.flatnonzero(count == size)
        every = picked.shape[0] == rows.shape[0]
        group = rows if every else rows[picked]
        if (older[:, :size] if every else older[picked, :size]).all():
            # The usual case, timestamps in order: the old points are each row's first `size`. Integer
            # indexing of the rows copies just those columns, instead of masking every column.
            first_hour = block.values[group, :size]
        else:
            chosen, mask = (block.rows_of(block.values, rows), older) if every else (block.values[group], older[picked])
            first_hour = chosen[mask].reshape(picked.shape[0], size)
        mean = first_hour.mean(axis=1)
        std = first_hour.std(axis=1, ddof=1)
        codes[picked] = np.where(np.abs(tail[picked] - mean) > 3 * std, TRUE, FALSE)
    return codes


def stddev_from_average(block: Block, rows: np.ndarray) -> np.ndarray:
    """Batched ``stddev_from_average``: ``|tail - mean| > 3 * sample-std`` (False for one point).

    A row is decided from :func:`_squares_interval` when the test has the same outcome at both ends of
    the interval, by more than the rounding of the test; the others (a tail within about ``1e-9`` of the
    threshold, or a mean that dwarfs the deviations) from the exact :func:`_squares`.
    """
    n = block.length
    if n < 2:
        return np.full(rows.shape[0], FALSE, dtype=np.int8)
    distance = np.abs(_tail(block, rows) - _mean(block, rows))
    low, high = _squares_interval(block, rows)
    surely = distance > 3 * np.sqrt(high / (n - 1)) * (1 + _THRESHOLD_MARGIN)
    # A tail at the mean is False whatever the std (a constant row's interval starts at 0).
    surely_not = (distance == 0) | (distance < 3 * np.sqrt(low / (n - 1)) * (1 - _THRESHOLD_MARGIN))
    return _decided(surely, surely_not,
                    lambda close: distance[close] > 3 * np.sqrt(_squares(block, rows[close]) / (n - 1)))


_GRUBBS_CRITICAL: dict[int, float] = {}
#: Lengths kept in the caches of per-length constants (gappy series bring new lengths every run, and a
#: Dask worker lives for many runs): a full cache is emptied and refilled, not grown.
_CACHED_LENGTHS = 1024


def _student_t_isf(q: float, df: int) -> float:
    """``scipy.stats.t.isf(q, df)``: the same number, without the distribution's argument handling.

    scipy's ``t.isf`` is ``-stdtrit(df, q)`` times a scale of 1 plus a location of 0, which leaves it
    unchanged, behind some 30 µs of generic checks. :func:`grubbs_critical` caches it per series length,
    but a series with a length of its own (a gappy one) needs a new one every run. :data:`_ISF_IS_STDTRIT`
    checks at import that this scipy still computes it so; if not, the distribution itself is asked.
    """
    return -stdtrit(df, q) if _ISF_IS_STDTRIT else student_t.isf(q, df)


def _isf_is_stdtrit() -> bool:
    return all(student_t.isf(0.05 / (2 * n), n - 2) == -stdtrit(n - 2, 0.05 / (2 * n)) for n in (3, 4, 30, 1441, 86401))


_ISF_IS_STDTRIT = _isf_is_stdtrit()


def grubbs_critical(n: int) -> float:
    """The Grubbs critical value for ``n`` points, computed as the reference does and cached by ``n``."""
    critical = _GRUBBS_CRITICAL.get(n)
    if critical is None:
        if len(_GRUBBS_CRITICAL) >= _CACHED_LENGTHS:
            _GRUBBS_CRITICAL.clear()
        threshold = _student_t_isf(0.05 / (2 * n), n - 2)
        threshold_sq = threshold * threshold
        # Returned from the local, not read back: another thread may empty the cache in between.
        critical = _GRUBBS_CRITICAL[n] = ((n - 1) / np.sqrt(n)) * np.sqrt(threshold_sq / (n - 2 + threshold_sq))
    return critical


def grubbs(block: Block, rows: np.ndarray) -> np.ndarray:
    """Batched ``grubbs``: ``(tail - mean) / pop-std > G(n)``; False when the std is 0 or ``n <= 2``.

    As :func:`stddev_from_average`, a row is decided from :func:`_squares_interval` when both ends agree
    by more than the rounding of the test (a tail at or below the mean is False whatever the std, ``G``
    being positive), the others from the exact :func:`_squares`.
    """
    n = block.length
    if n <= 2:
        return np.full(rows.shape[0], FALSE, dtype=np.int8)
    # G(n) > 0 for every n > 2 (Student's t is positive at a tail probability below 1/2), as the margins
    # assume; were it NaN, every comparison with it would be False, as in the reference.
    critical = grubbs_critical(n)
    difference = _tail(block, rows) - _mean(block, rows)
    low, high = _squares_interval(block, rows)
    surely = (low > 0) & (difference / np.sqrt(high / n) > critical * (1 + _THRESHOLD_MARGIN))
    surely_not = (difference <= 0) | (difference / np.sqrt(low / n) < critical * (1 - _THRESHOLD_MARGIN))

    def exact(close: np.ndarray) -> np.ndarray:
        std = np.sqrt(_squares(block, rows[close]) / n)
        return (std != 0) & (difference[close] / std > critical)

    return _decided(surely, surely_not, exact)


def ks_test(block: Block, rows: np.ndarray) -> np.ndarray:
    """Batched ``ks_test`` (:mod:`skyline_analyzer.detection.kstest`): the ADF step's close calls are deferred."""
    votes, decided = ks_votes(block.rows_of(block.timestamps, rows), block.rows_of(block.values, rows), block.now)
    codes = np.where(votes, TRUE, FALSE).astype(np.int8)
    codes[~decided] = DEFER
    return codes


def mean_subtraction_cumulation(block: Block, rows: np.ndarray) -> np.ndarray:
    """Batched ``mean_subtraction_cumulation``: the last value against the mean and std of the others."""
    n = block.length
    if n <= 2:
        # One point: the mean of nothing is NaN; two: the std of one value is NaN. Both compare False.
        return np.full(rows.shape[0], FALSE, dtype=np.int8)
    values = block.rows_of(block.values, rows)
    centred = values - values[:, :-1].mean(axis=1)[:, None]
    std = centred[:, :-1].std(axis=1, ddof=1)
    return np.where(np.abs(centred[:, -1]) > 3 * std, TRUE, FALSE).astype(np.int8)


def median_absolute_deviation(block: Block, rows: np.ndarray) -> np.ndarray:
    """Batched ``median_absolute_deviation``: ``|v[-1] - median| / MAD > 6``; False when the MAD is 0."""
    values = block.rows_of(block.values, rows)
    deviations = np.abs(values - np.median(values, axis=1)[:, None])
    mad = np.median(deviations, axis=1)
    anomalous = (mad != 0) & (deviations[:, -1] / mad > 6)
    return np.where(anomalous, TRUE, FALSE).astype(np.int8)


_EWM_WEIGHTS: dict[int, tuple[np.ndarray, float, float, float]] = {}


def _ewm_weights(n: int) -> tuple[np.ndarray, float, float, float]:
    """``(weights, total, total**2, total**2 - weights.weights)`` as ``numerics.ewm_last`` forms them."""
    cached = _EWM_WEIGHTS.get(n)
    if cached is None:
        if len(_EWM_WEIGHTS) >= _CACHED_LENGTHS:
            _EWM_WEIGHTS.clear()
        decay = 1.0 - 1.0 / (1.0 + EWM_COM)
        weights = decay ** np.arange(n - 1, -1, -1, dtype=np.float64)
        total = weights.sum()
        total_sq = total * total
        cached = _EWM_WEIGHTS[n] = (weights, total, total_sq, total_sq - float(np.dot(weights, weights)))
    return cached


def stddev_from_moving_average(block: Block, rows: np.ndarray) -> np.ndarray:
    """``stddev_from_moving_average`` with the weights cached by length and one ``np.dot`` per row.

    The weights depend only on the length, and ``np.dot`` of two vectors gives the same bits whatever
    the vectors' alignment, so this is the reference arithmetic without rebuilding the weights.
    """
    codes = np.full(rows.shape[0], FALSE, dtype=np.int8)
    for position, row in enumerate(rows):
        if moving_average_is_anomalous(block.values[row]):
            codes[position] = TRUE
    return codes


def moving_average_is_anomalous(values: np.ndarray) -> bool:
    """One row's ``stddev_from_moving_average`` vote: ``|v[-1] - EWMA| > 3 * EWMSTD`` (False for one point)."""
    weights, total, total_sq, denominator = _ewm_weights(values.shape[0])
    if denominator <= 0.0:
        return False
    mean = float(np.dot(weights, values) / total)
    biased_var = float(np.dot(weights, (values - mean) ** 2) / total)
    std = math.sqrt(biased_var * total_sq / denominator)
    return bool(abs(values[-1] - mean) > 3 * std)


#: The largest difference allowed between the closed-form residuals and ``lstsq``'s, in units of
#: ``eps * cond**2 * |v|`` (``cond`` of the ``[t, 1]`` design, ``|v|`` the size of the values and the fit).
#: ``lstsq`` on raw epoch timestamps loses about ``cond**2`` ulps: over 3,000 random series of 3 to 8,640
#: points and 1 to 300 s steps the difference reached 39 of these units; this allows some 100 times that.
_LSTSQ_TOLERANCE = 2.0**-52 * 4096


def least_squares(block: Block, rows: np.ndarray) -> np.ndarray:
    """Batched ``least_squares`` by closed-form OLS on centred timestamps, deferring close calls.

    The reference fits with ``lstsq(rcond=-1)`` (an SVD) on raw epoch timestamps, whose residuals differ
    from the exact fit by up to ``cond**2`` ulps of the values (``cond`` is large: timestamps far from
    zero, spanning little). Any row whose vote depends on a margin within :data:`_LSTSQ_TOLERANCE` of
    that (``|tau|`` against ``3 std``, or either against 0.5 for the rounding) is decided by the
    reference; clear spikes and clearly quiet series are decided here.
    """
    n = block.length
    if n < 3:
        return np.full(rows.shape[0], FALSE, dtype=np.int8)
    timestamps = block.rows_of(block.timestamps, rows)
    values = block.rows_of(block.values, rows)
    centred_t = timestamps - timestamps.mean(axis=1)[:, None]
    centred_v = values - values.mean(axis=1)[:, None]
    spread = np.einsum("ij,ij->i", centred_t, centred_t)
    slope = np.einsum("ij,ij->i", centred_t, centred_v) / spread
    errors = centred_v - slope[:, None] * centred_t
    std = errors.std(axis=1)
    tau = np.abs((errors[:, -1] + errors[:, -2] + errors[:, -3]) / 3)
    condition = 1.0 + np.abs(timestamps).max(axis=1) / np.sqrt(spread / n)
    size = np.abs(values).max(axis=1) + np.abs(slope) * np.sqrt(spread)
    margin = _LSTSQ_TOLERANCE * condition * condition * size
    # The vote is a conjunction of three tests, each decided here unless its two sides are within the
    # margin. One test clearly False settles the vote (False) whatever the others, so a row is close
    # only when some test is within its margin and none is clearly False.
    tests = ((tau - 3 * std, 4 * margin), (std - 0.5, 2 * margin), (tau - 0.5, 2 * margin))
    near = np.zeros(rows.shape[0], dtype=bool)
    clearly_false = np.zeros(rows.shape[0], dtype=bool)
    for difference, allowed in tests:
        near |= np.abs(difference) <= allowed
        clearly_false |= difference < -allowed
    anomalous = (tau > 3 * std) & (std >= 0.5) & (tau >= 0.5)
    close = (
        (near & ~clearly_false)
        | ~np.isfinite(margin)
        | ~np.isfinite(tau)
        | ~np.isfinite(std)
    )
    codes = np.where(anomalous, TRUE, FALSE).astype(np.int8)
    codes[close] = DEFER
    return codes


#: The batched form of every detector, by the name used in ``settings.ALGORITHMS``.
BATCHED: dict[str, Callable[[Block, np.ndarray], np.ndarray]] = {
    "histogram_bins": histogram_bins,
    "first_hour_average": first_hour_average,
    "stddev_from_average": stddev_from_average,
    "grubbs": grubbs,
    "ks_test": ks_test,
    "mean_subtraction_cumulation": mean_subtraction_cumulation,
    "median_absolute_deviation": median_absolute_deviation,
    "stddev_from_moving_average": stddev_from_moving_average,
    "least_squares": least_squares,
}
