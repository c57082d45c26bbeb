"""Alerting: alert rules, matching, rate limiting, dispatch to the alerters, the Mirage hand-off and the stale
digest. ``alerters/`` holds one module per alert channel."""
