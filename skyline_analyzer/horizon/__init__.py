"""Horizon: the ingestion side (docs/horizon.md).

:mod:`.agent` runs the processes. Each listener (:mod:`.listener`) serves one protocol with its receiver
(:mod:`.pickle_receiver`, :mod:`.plaintext_receiver` over :mod:`.tcp_server`; :mod:`.udp_receiver`), checks
every datapoint (:mod:`.datapoints`), counts what it refuses (:mod:`.rejections`) and hands the rest to the
workers' bounded queues (:mod:`.chunker`); workers (:mod:`.worker`) APPEND them to ``metrics.<name>``;
Roomba (:mod:`.roomba`) trims, sorts and purges the series.
"""
