"""Every setting's default, and the names settings may refer to: plain data, the one place they live.

Values are Skyline v1.2.8's unless a comment says otherwise (docs/departures.md#settings). The operator's
``settings.py`` repeats each one with an explanation; ``tests/test_config.py`` keeps the two in step. A setting missing
from the operator's file falls back to the value here. How each setting is checked is in
:mod:`skyline_analyzer.schema` (docs/settings.md).

This module imports nothing, so that loading and validating settings never imports the numerical stack.
"""

from __future__ import annotations

from typing import Any

#: The nine algorithms by the names ``ALGORITHMS`` uses, in v1.2.8's order: cheap ones that rarely vote
#: True first, so that the early exit skips the costly ones (docs/analyzer-optimizations.md).
ALGORITHM_NAMES = (
    "histogram_bins",
    "first_hour_average",
    "stddev_from_average",
    "grubbs",
    "ks_test",
    "mean_subtraction_cumulation",
    "median_absolute_deviation",
    "stddev_from_moving_average",
    "least_squares",
)

#: The values ``ANALYZER_ENGINE`` accepts: 'fast' (batched) and 'reference' (per series, the oracle).
ENGINES = ("fast", "reference")
EXECUTORS = ("local", "dask")

#: The alerter names an ALERTS tuple may use, each a module of ``skyline_analyzer.alerters``, with the
#: setting that switches it on (None: always on). An e-mail address is also accepted: the legacy form of smtp.
ALERTER_NAMES: dict[str, str | None] = {
    "smtp": None,
    "syslog": "SYSLOG_ENABLED",
    "slack": "SLACK_ENABLED",
    "pagerduty": "PAGERDUTY_ENABLED",
    "webhook": "WEBHOOK_ENABLED",
}

#: v1.2.8 alerter names with no module any more. Accepted in ALERTS so that v1.2.8 settings files still
#: load; a matching alert is logged as having no alerter (docs/alerts.md).
RETIRED_ALERTERS = ("hipchat",)

DEFAULTS: dict[str, Any] = {
    # --- Redis -----------------------------------------------------------------------------------
    "REDIS_SOCKET_PATH": "/tmp/redis.sock",
    "REDIS_PASSWORD": None,
    # Beyond v1.2.8 (socket only): when REDIS_HOST is set, connect over TCP instead of the socket.
    "REDIS_HOST": None,
    "REDIS_PORT": 6379,
    # Beyond v1.2.8: "host:port" startup nodes of a Redis Cluster; empty: the single Redis above.
    "REDIS_CLUSTER_NODES": [],
    # --- Paths -----------------------------------------------------------------------------------
    "LOG_PATH": "/var/log/skyline",
    "PID_PATH": "/run/skyline",  # v1.2.8: /var/run/skyline, the same directory
    "SKYLINE_TMP_DIR": "/var/lib/skyline/tmp",  # private to the daemon, never a shared /tmp (docs/analyzer.md)
    "FULL_NAMESPACE": "metrics.",
    "MINI_NAMESPACE": "mini.",
    "FULL_DURATION": 86400,
    "MINI_DURATION": 3600,
    "ENABLE_DEBUG": False,
    # --- Graphite --------------------------------------------------------------------------------
    "GRAPHITE_HOST": "YOUR_GRAPHITE_HOST.example.com",
    "GRAPHITE_PROTOCOL": "http",
    "GRAPHITE_PORT": "80",
    "GRAPHITE_GRAPH_SETTINGS": "&width=588&height=308&bgcolor=000000&fontBold=true&fgcolor=C0C0C0",
    "GRAPHITE_CONNECT_TIMEOUT": 5,
    "GRAPHITE_READ_TIMEOUT": 10,
    "TARGET_HOURS": "7",
    "GRAPH_URL": "http://YOUR_GRAPHITE_HOST.example.com:80/render/?width=1400&from=-7hour&target=",
    "CARBON_PORT": 2003,
    "OCULUS_HOST": "",
    "SERVER_METRICS_NAME": "YOUR_HOSTNAME",
    # --- Downstream apps (hand-off paths; only written when the feature is enabled) --------------
    "MIRAGE_CHECK_PATH": "/opt/skyline/mirage/check",
    "CRUCIBLE_CHECK_PATH": "/opt/skyline/crucible/check",
    "PANORAMA_CHECK_PATH": "/opt/skyline/panorama/check",
    # --- Analyzer --------------------------------------------------------------------------------
    "ANOMALY_DUMP": "/var/lib/skyline/webapp/anomalies.json",  # v1.2.8: relative to its package
    # Beyond v1.2.8 (always JSONP): wrap anomalies.json as handle_data(<json>) for the original webapp.
    "ANOMALY_DUMP_JSONP": False,
    "ANALYZER_PROCESSES": 1,
    # Beyond v1.2.8: 'fast' evaluates batches of series vectorised; 'reference' is the per-series oracle.
    "ANALYZER_ENGINE": "fast",
    "ANALYZER_OPTIMUM_RUN_DURATION": 60,
    "MAX_ANALYZER_PROCESS_RUNTIME": 180,
    # Beyond v1.2.8 (docs/scale-out.md): 'local' forks ANALYZER_PROCESSES workers; 'dask' hands ranges of
    # hash slots to the Dask scheduler at DASK_SCHEDULER_ADDRESS, in about DASK_UNITS_PER_RUN units a run.
    "ANALYZER_EXECUTOR": "local",
    "DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:8786",
    "DASK_UNITS_PER_RUN": 64,
    "DASK_CONNECT_TIMEOUT": 10.0,
    "STALE_PERIOD": 500,
    "ALERT_ON_STALE_METRICS": True,
    "ALERT_ON_STALE_PERIOD": 300,
    "DO_NOT_ALERT_ON_STALE_METRICS": ["donot_alert_on_stale.metric_known_to_go_stale"],
    "MIN_TOLERABLE_LENGTH": 1,
    "MAX_TOLERABLE_BOREDOM": 100,
    "BOREDOM_SET_SIZE": 1,
    "CANARY_METRIC": "statsd.numStats",
    "ALGORITHMS": list(ALGORITHM_NAMES),
    "CONSENSUS": 6,
    "RUN_OPTIMIZED_WORKFLOW": True,
    "ENABLE_ALGORITHM_RUN_METRICS": True,
    "ENABLE_ALL_ALGORITHMS_RUN_METRICS": False,
    # Beyond v1.2.8: series per worker per run whose complete votes are kept for `tune` (0 records nothing),
    # and the runs of records kept in Redis (docs/analyzer-optimizations.md#tune).
    "TUNE_SAMPLE_SIZE": 10,
    "TUNE_HISTORY_RUNS": 1440,
    "ENABLE_SECOND_ORDER": False,
    # Beyond v1.2.8: the seasonal second stage (docs/second-stage.md), off by default.
    "ENABLE_ALERTS": True,
    "ENABLE_MIRAGE": False,
    "ENABLE_FULL_DURATION_ALERTS": True,
    "ANALYZER_CRUCIBLE_ENABLED": False,
    "ENABLE_CRUCIBLE": True,
    "CRUCIBLE_DATA_FOLDER": "/opt/skyline/crucible/data",
    "PANORAMA_ENABLED": True,
    "IONOSPHERE_ENABLED": True,
    "IONOSPHERE_CHECK_PATH": "/opt/skyline/ionosphere/check",
    "IONOSPHERE_DATA_FOLDER": "/opt/skyline/ionosphere/data",
    "IONOSPHERE_PROFILES_FOLDER": "/opt/skyline/ionosphere/features_profiles",
    "IONOSPHERE_KEEP_TRAINING_TIMESERIES_FOR": 86400,
    "SKYLINE_URL": "https://skyline.example.com",
    "MEMCACHE_ENABLED": False,
    "MEMCACHED_SERVER_IP": "127.0.0.1",
    "MEMCACHED_SERVER_PORT": 11211,
    "LUMINOL_CROSS_CORRELATION_THRESHOLD": 0.9,
    "OTHER_SKYLINE_REDIS_INSTANCES": [],
    "NON_DERIVATIVE_MONOTONIC_METRICS": [
        "the_namespace_of_the_monotonic_metric_to_not_calculate_the_derivative_for"
    ],
    # --- Alerts ----------------------------------------------------------------------------------
    "ALERTS": [
        ("skyline", "smtp", 1800),
        ("skyline_test.alerters.test", "smtp", 1800),
        ("skyline_test.alerters.test", "pagerduty", 1800),
    ],
    "PLOT_REDIS_DATA": True,
    "SMTP_OPTS": {
        "sender": "skyline@your_domain.com",
        "recipients": {
            "skyline": ["you@your_domain.com", "them@your_domain.com"],
            "skyline_test.alerters.test": ["you@your_domain.com"],
        },
        "default_recipient": ["you@your_domain.com"],
        "embed-images": True,
    },
    # Beyond v1.2.8 (which always used 127.0.0.1:25 without auth): the SMTP server alerts go through.
    "SMTP_HOST": "127.0.0.1",
    "SMTP_PORT": 25,
    "SMTP_USER": "",
    "SMTP_PASSWORD": "",
    "SMTP_STARTTLS": False,
    "SMTP_SSL": False,
    # v1.2.8 read it only when defined: the sender of the legacy e-mail-address alerter (None: SMTP_OPTS').
    "ALERT_SENDER": None,
    # Beyond v1.2.8: seconds any network alerter may block (v1.2.8 gave the smtp child 15 s), and how many
    # alerts of one run are sent at once.
    "ALERT_TIMEOUT": 15.0,
    "ALERT_CONCURRENCY": 10,
    # Beyond v1.2.8: seconds one run may spend sending its alerts in all (docs/alerts.md, "Time bounds").
    "ALERT_DISPATCH_TIMEOUT": 60.0,
    # Beyond v1.2.8: metric names whose smtp-rule match the Analyzer remembers from run to run (docs/alerts.md).
    "ALERT_MATCH_CACHE_SIZE": 1_000_000,
    "SYSLOG_ENABLED": True,
    # 'address' is beyond v1.2.8: the syslog socket path, or a [host, port] pair for UDP.
    "SYSLOG_OPTS": {"ident": "skyline", "address": "/dev/log"},
    "HIPCHAT_ENABLED": False,
    "HIPCHAT_OPTS": {
        "auth_token": "hipchat_auth_token",
        "sender": "hostname or identifier",
        "rooms": {"skyline": (12345,), "skyline_test.alerters.test": (12345,)},
        "color": "purple",
    },
    "PAGERDUTY_ENABLED": False,
    "PAGERDUTY_OPTS": {
        "subdomain": "example",
        "auth_token": "your_pagerduty_auth_token",
        "key": "your_pagerduty_service_api_key",
        # Beyond v1.2.8 (pygerduty's legacy API): the Events API v2 integration key and endpoint.
        "routing_key": "your_pagerduty_events_v2_routing_key",
        "events_url": "https://events.pagerduty.com/v2/enqueue",
        "severity": "error",
    },
    "SLACK_ENABLED": False,
    "SLACK_OPTS": {
        "bot_user_oauth_access_token": "YOUR_slack_bot_user_oauth_access_token",
        "channels": {"skyline": ("#general",), "skyline_test.alerters.test": ("#general",)},
        "icon_emoji": ":chart_with_upwards_trend:",
        # Beyond v1.2.8: an incoming-webhook URL (used instead of the token when set) and the Web API base.
        "webhook_url": "",
        "api_url": "https://slack.com/api",
    },
    # Beyond v1.2.8: the generic webhook alerter POSTs JSON to the URLs listed for the ALERTS pattern.
    "WEBHOOK_ENABLED": False,
    "WEBHOOK_OPTS": {
        "urls": {"skyline": ["https://hooks.example.com/skyline"]},
        "default_urls": [],
        "headers": {},
    },
    # --- Webapp (beyond v1.2.8's Flask app: read-only, docs/webapp.md) ----------------------------
    "WEBAPP_IP": "127.0.0.1",
    "WEBAPP_PORT": 1500,
    "WEBAPP_AUTH_ENABLED": False,
    "WEBAPP_AUTH_USER": "admin",
    "WEBAPP_AUTH_USER_PASSWORD": "",
    # Clients allowed to connect (addresses or networks); an empty list allows every client.
    "WEBAPP_ALLOWED_IPS": ["127.0.0.1", "::1"],
    "WEBAPP_MAX_QUERY_BYTES": 2048,
    "WEBAPP_MAX_SEARCH_RESULTS": 100,
    "WEBAPP_METRICS_CACHE_SECONDS": 10,
    "WEBAPP_MAX_SERIES_BYTES": 33554432,
    "WEBAPP_MAX_DUMP_BYTES": 16777216,
    "WEBAPP_MAX_ANOMALIES_SHOWN": 5000,
    # --- Horizon ---------------------------------------------------------------------------------
    "WORKER_PROCESSES": 2,
    "HORIZON_IP": "YOUR_SKYLINE_INTSANCE_IP_ADDRESS",
    "PICKLE_PORT": 2024,
    "UDP_PORT": 2025,
    # Beyond v1.2.8: carbon plaintext line protocol (not 2003: carbon owns that port).
    "PLAINTEXT_PORT": 2026,
    # Beyond v1.2.8: a pickle frame whose length prefix exceeds this is refused unread (carbon's cap).
    "MAX_PICKLE_FRAME_BYTES": 1048576,
    # Beyond v1.2.8 (FIX H3): seconds a partial chunk may wait before it is queued anyway.
    "CHUNK_FLUSH_INTERVAL": 1.0,
    "CHUNK_SIZE": 10,
    "MAX_QUEUE_SIZE": 500,
    # Beyond v1.2.8 (which had no limits; docs/horizon.md, "Limits"): connections each TCP listener holds,
    # seconds a silent connection is kept, bytes of partial frames and lines held over all of one
    # listener's connections, the longest metric name in UTF-8 bytes, and the memory of each name cache.
    "HORIZON_MAX_CONNECTIONS": 1000,
    "HORIZON_IDLE_TIMEOUT": 300.0,
    "HORIZON_MAX_BUFFERED_BYTES": 33554432,
    "HORIZON_MAX_NAME_BYTES": 1024,
    "HORIZON_CACHE_BYTES": 16777216,
    # Beyond v1.2.8 (which sent every 10 s): seconds between Horizon's counter reports to Graphite.
    "HORIZON_REPORT_INTERVAL": 60,
    "ROOMBA_PROCESSES": 1,
    "ROOMBA_GRACE_TIME": 600,
    "ROOMBA_TIMEOUT": 100,
    # Beyond v1.2.8 (which read one key at a time): bytes of values Roomba reads in one batch (about).
    "ROOMBA_BATCH_BYTES": 8388608,
    "MAX_RESOLUTION": 1000,
    # Beyond v1.2.8 (docs/second-stage.md): the opt-in second stage. Candidates (flagged, or with at least
    # SECOND_STAGE_MIN_VOTES votes among the algorithms the first stage ran) are judged on a longer history
    # that Horizon keeps downsampled in Redis, seasonality taken into account, and reported only if
    # anomalous there.
    "SECOND_STAGE_ENABLED": False,
    "SECOND_STAGE_MIN_VOTES": 1,
    "SECOND_STAGE_DURATION": 604800,
    "SECOND_STAGE_RESOLUTION": 600,
    "SECOND_STAGE_PERIOD": 86400,
    "SECOND_STAGE_WINDOW": 3600,
    "SECOND_STAGE_MIN_PERIODS": 3,
    "SECOND_STAGE_THRESHOLD": 3.5,
    "SKIP_LIST": ["skyline.analyzer.", "skyline.boundary.", "skyline.ionosphere.", "skyline.mirage."],
    "DO_NOT_SKIP_LIST": [
        "skyline.analyzer.run_time",
        "skyline.boundary.run_time",
        "skyline.analyzer.ionosphere_metrics",
        "skyline.analyzer.mirage_metrics",
        "skyline.analyzer.total_analyzed",
        "skyline.analyzer.total_anomalies",
    ],
}
