"""Horizon: the ingestion side (docs/horizon.md).

Listeners (:mod:`.listen`) accept carbon pickle frames, msgpack datagrams and carbon plaintext lines and
put chunks of datapoints on one bounded queue; workers (:mod:`.worker`) APPEND them to ``metrics.<name>``;
Roomba (:mod:`.roomba`) trims, sorts and purges the series; :mod:`.agent` runs the processes.
"""
