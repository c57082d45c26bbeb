"""Horizon: the ingestion side (SPEC.md 1.4-1.7).

Listeners (:mod:`.listen`) accept carbon pickle frames, msgpack datagrams and carbon plaintext lines and
put chunks of datapoints on one bounded queue; workers (:mod:`.worker`) APPEND them to ``metrics.<name>``;
Roomba (:mod:`.roomba`) trims, sorts and purges the series; :mod:`.agent` runs the processes.
"""
