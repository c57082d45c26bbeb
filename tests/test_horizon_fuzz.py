"""Hostile input at all three listeners of a real Horizon, valid datapoints from several clients interleaved:
no child dies, every valid datapoint is stored exactly once, every refusal is counted, memory stays bounded.

About 1,000 hostile inputs per protocol, seeded (the same inputs every run); benchmarks/fuzz_horizon.py runs
10,000 and prints the figures.
"""

from __future__ import annotations

from tests.fuzz_campaign import PROTOCOLS, run_campaign
from tests.horizon_process import HorizonProcess, horizon_settings

MB = 1_000_000


def test_hostile_input_kills_nothing_loses_nothing_and_is_all_counted(make_settings, redis_conn) -> None:
    # A queue deep enough that nothing is shed: any valid datapoint missing is then a loss, not overload.
    horizon = HorizonProcess(horizon_settings(make_settings, MAX_QUEUE_SIZE=5000))
    try:
        figures = run_campaign(horizon, redis_conn, per_protocol=1000, seed=10)
    finally:
        horizon.stop()
    assert figures.deaths == 0
    assert figures.kernel_drops == 0, "the UDP senders are paced so that the kernel drops nothing"
    for protocol in PROTOCOLS:
        stats = figures.protocols[protocol]
        assert stats.shed == 0, protocol
        assert stats.received == stats.valid_sent + stats.kept_sent, protocol
        assert stats.rejected_counted == stats.rejected_expected, protocol
    assert figures.protocols["pickle"].kept_sent > 0, "good elements of hostile frames were kept"
    assert (figures.lost, figures.duplicated) == (0, 0)
    assert figures.written == sum(stats.received for stats in figures.protocols.values())
    assert figures.reasons_ok(), (figures.reasons_expected, figures.reasons_counted)
    grown = {name: figures.rss_after[name] - figures.rss_before[name] for name in figures.rss_before}
    assert all(growth < 64 * MB for growth in grown.values()), grown
