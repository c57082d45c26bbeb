"""Alerters: one module per ALERTS alerter name, each with one function.

Every alerter module exposes::

    alert(alert_tuple, target, context, settings, redis) -> None

``alert_tuple`` is the matching ALERTS entry ``(pattern, alerter, EXPIRATION_TIME[, hours])``;
``target`` is an :class:`skyline_analyzer.detection.anomaly.Anomaly` (or, for ``stale_digest``, a
:class:`skyline_analyzer.alerting.dispatch.StaleMetrics`); ``context`` is the app the alert is sent for
(``'Analyzer'`` or ``'Mirage'``). The function returns once the alert was handed to its receiver and
raises on any failure, so that :mod:`skyline_analyzer.alerting.dispatch` leaves the rate-limit key unset and the
next run tries again. An alerter that is switched off by its ``*_ENABLED`` setting returns without
sending. Network alerters bound every socket operation by ``ALERT_TIMEOUT``.

A new alerter is a new module here named like the alerter (``alert_X`` in v1.2.8 becomes ``X.py``).
"""
