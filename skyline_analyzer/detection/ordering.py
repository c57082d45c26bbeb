"""The expected cost of an ``ALGORITHMS`` order under the early exit, and the order that minimises it.

The model (docs/analyzer-optimizations.md#tune). Algorithm ``a`` costs ``c[a]`` seconds each time it runs,
whatever series it runs on. A series' votes do not depend on the order; the early exit stops running
algorithms after the vote that brings the series' Falses to ``N - CONSENSUS + 1`` (a None vote is not a
False). So algorithm ``π[k]`` runs on a series exactly when fewer than ``N - CONSENSUS + 1`` of the
algorithms before it, ``π[0..k-1]``, voted False on that series, and over a sample of complete vote
vectors the expected cost per series of the order ``π`` is

    cost(π) = Σ_k  c[π[k]] · alive({π[0], ..., π[k-1]}),

where ``alive(S)`` is the (weighted) share of the sample with fewer than ``N - CONSENSUS + 1`` Falses
among the algorithms of the *set* ``S``. Only the set of the algorithms that come before matters, not their
order, so the cheapest order comes from a dynamic programme over subsets (as for Held and Karp's
travelling salesman): ``best(S) = min over a in S of best(S - {a}) + c[a] · alive(S - {a})``, the cost
of the cheapest way to run the algorithms of ``S`` first. It visits ``2**N · N`` states (4,608 for the
nine algorithms) instead of ``N!`` orders (362,880) and is exact: ``tests/test_tune.py`` checks it against
every permutation. Without the early exit every algorithm runs on every series and every order costs the
same.

Algorithms are indices ``0..N-1`` here; a sample is the bit mask of each vector's False votes (bit ``i``
set when algorithm ``i`` voted False) with a weight.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The most algorithms an order is searched over: the table of subsets has 2**MAX_ALGORITHMS entries.
MAX_ALGORITHMS = 16
#: Relative difference below which two expected costs are a tie (sums of the same terms in another order).
TIE = 1e-12


def alive_table(false_masks: np.ndarray, weights: np.ndarray, count: int, max_false: int | None) -> np.ndarray:
    """``alive[S]`` for every subset ``S`` of ``count`` algorithms (``S`` a bit mask): the weighted share of
    the sample with fewer than ``max_false`` False votes in ``S``; all ones when ``max_false`` is None (no
    early exit) or the sample is empty."""
    if not 0 < count <= MAX_ALGORITHMS:
        raise ValueError(f"between 1 and {MAX_ALGORITHMS} algorithms, not {count}")
    subsets = np.arange(1 << count, dtype=np.int64)
    total = float(np.sum(weights))
    if max_false is None or total <= 0:
        return np.ones(subsets.shape[0])
    masks, inverse = np.unique(np.asarray(false_masks, dtype=np.int64), return_inverse=True)
    mask_weights = np.bincount(inverse.reshape(-1), weights=np.asarray(weights, dtype=np.float64))
    falses = np.bitwise_count(masks[:, None] & subsets[None, :])
    return (mask_weights @ (falses < max_false)) / total


def expected_cost(order: Sequence[int], costs: Sequence[float], alive: np.ndarray) -> float:
    """Expected seconds per series of running ``order`` (indices into ``costs``) with the early exit."""
    total, before = 0.0, 0
    for algorithm in order:
        total += costs[algorithm] * float(alive[before])
        before |= 1 << algorithm
    return total


def best_order(costs: Sequence[float], alive: np.ndarray, preferred: Sequence[int] | None = None
               ) -> tuple[list[int], float]:
    """The order of least expected cost, and that cost.

    Among orders of equal cost the one closest to ``preferred`` (default ``0..N-1``, the current order)
    is returned: at every step of the reconstruction the algorithm placed last is the one ``preferred``
    places latest, so an order that is already optimal comes back unchanged.
    """
    count = len(costs)
    if alive.shape[0] != 1 << count:
        raise ValueError(f"an alive table of {alive.shape[0]} subsets for {count} algorithms")
    rank = {algorithm: position for position, algorithm in enumerate(preferred or range(count))}
    share = [float(x) for x in alive]
    best = [0.0] + [float("inf")] * ((1 << count) - 1)
    last = [-1] * (1 << count)
    for subset in range(1, 1 << count):
        for algorithm in range(count):
            bit = 1 << algorithm
            if not subset & bit:
                continue
            # Every proper subset is a smaller number, so best[subset ^ bit] is final here.
            candidate = best[subset ^ bit] + costs[algorithm] * share[subset ^ bit]
            current, margin = best[subset], TIE * abs(best[subset])
            if last[subset] < 0 or candidate < current - margin or (
                candidate <= current + margin and rank[algorithm] > rank[last[subset]]
            ):
                best[subset], last[subset] = candidate, algorithm
    order, subset = [], (1 << count) - 1
    while subset:
        order.append(last[subset])
        subset ^= 1 << last[subset]
    order.reverse()
    return order, best[-1]
