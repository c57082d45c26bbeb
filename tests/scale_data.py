"""The metrics the Dask tests (and the scale-out benchmark's check) run: golden vectors, synthetic, hostile.

:func:`seed_mixed` writes, as Horizon leaves them, both golden-vector corpora shifted to end at ``now``,
``count`` synthetic series (some spiked), a corrupt value (``Other``) and a member whose key is gone
(``DeletedByRoomba``). It returns every full key in ``metrics.unique_metrics``.
"""

from __future__ import annotations

from typing import Any

from skyline_analyzer import keys, synthetic
from skyline_analyzer.harness import seed_redis
from tests.support import CORPORA, vector_input

CORPUS_NOW = 1700000000


def seed_mixed(conn: Any, now: int, count: int, anomalous: int = 20, points: int = 300) -> list[str]:
    metrics: dict[str, list] = {}
    for corpus in CORPORA:
        delta = now - CORPUS_NOW
        for name, pairs in vector_input(corpus).items():
            metrics[f"{corpus}.{name}"] = [[t + delta, v] for t, v in pairs]
    metrics.update(synthetic.make_metrics(count, now, anomalous=anomalous, points=points))
    seed_redis(conn, metrics, "metrics.")
    conn.set(keys.metric("metrics.", "hostile.corrupt"), b"\xc1\xc1 not msgpack")
    conn.sadd(keys.unique_metrics("metrics."), keys.metric("metrics.", "hostile.corrupt"),
              keys.metric("metrics.", "hostile.deleted"))
    return sorted(m.decode() for m in conn.smembers(keys.unique_metrics("metrics.")))
