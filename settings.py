"""Skyline analyzer settings: the operator's file.

Every setting the analyzer and Horizon read, with its default (Skyline v1.2.8's, except the deployment
paths: docs/install.md). Write a copy with ``skyline-analyzer settings init PATH``, edit it, and name it
with ``--settings PATH`` or SKYLINE_SETTINGS (in a source checkout, bin/<app>.d use this file, which the package
ships as its template). Settings are validated at start-up: a bad value, or an
UPPER_CASE name that is not a setting (a typo), stops the process with a message naming the setting.
Helper variables must be lowercase or start with '_'. The rules are in docs/settings.md.
"""


# ----------------------------------------------------------------------------------------------------
# Redis
# ----------------------------------------------------------------------------------------------------

# Redis unix socket every component connects through (database 0). The systemd units give the daemons a
# private /tmp: point this at the socket under /run/redis instead (docs/install.md#redis).
REDIS_SOCKET_PATH = '/tmp/redis.sock'
# Redis AUTH password; None sends no AUTH.
REDIS_PASSWORD = None
# Connect to Redis over TCP at this host instead of the socket (None: use REDIS_SOCKET_PATH).
REDIS_HOST = None
# TCP port used with REDIS_HOST.
REDIS_PORT = 6379
# Redis Cluster startup nodes, e.g. ['10.0.0.1:7000', '10.0.0.2:7000'] (beyond v1.2.8; docs/redis-cluster.md).
# Empty: the single Redis above. When set, every component uses the cluster and REDIS_HOST/REDIS_SOCKET_PATH
# are not used; REDIS_PASSWORD is sent to every node.
REDIS_CLUSTER_NODES = []

# ----------------------------------------------------------------------------------------------------
# Paths and namespaces
# ----------------------------------------------------------------------------------------------------

# Directory for <app>.log (an absolute path; must exist; rotated at midnight, 5 kept).
LOG_PATH = '/var/log/skyline'
# Directory for <app>.pid (an absolute path; must exist; v1.2.8's /var/run/skyline is the same place).
PID_PATH = '/run/skyline'
# Private scratch directory (algorithm timing and error files): created 0700, owned by the daemon's user.
SKYLINE_TMP_DIR = '/var/lib/skyline/tmp'
# Prefix of every series key in Redis: metrics.<name>.
FULL_NAMESPACE = 'metrics.'
# Prefix of the short-retention mirror (written only when OCULUS_HOST is set).
MINI_NAMESPACE = 'mini.'
# Seconds of data kept and analysed per series (first_hour_average, Roomba window, alert graphs).
FULL_DURATION = 86400
# Seconds kept in the mini namespace.
MINI_DURATION = 3600
# Extra debug logging in the alerters.
ENABLE_DEBUG = False

# ----------------------------------------------------------------------------------------------------
# Graphite
# ----------------------------------------------------------------------------------------------------

# Carbon host for skyline.* metrics and render host for graphs; '' disables sending.
GRAPHITE_HOST = 'YOUR_GRAPHITE_HOST.example.com'
# Scheme of Graphite render links in alerts.
GRAPHITE_PROTOCOL = 'http'
# Port of Graphite render links (a string; '' leaves it out).
GRAPHITE_PORT = '80'
# Query string appended to render links.
GRAPHITE_GRAPH_SETTINGS = '&width=588&height=308&bgcolor=000000&fontBold=true&fgcolor=C0C0C0'
# Seconds to connect when fetching a Graphite graph for an alert.
GRAPHITE_CONNECT_TIMEOUT = 5
# Seconds to read a Graphite graph for an alert.
GRAPHITE_READ_TIMEOUT = 10
# Hours shown by webapp graph links.
TARGET_HOURS = '7'
# Webapp graph link prefix (the metric name is appended).
GRAPH_URL = 'http://YOUR_GRAPHITE_HOST.example.com:80/render/?width=1400&from=-7hour&target='
# Carbon plaintext port the analyzer sends its own metrics to.
CARBON_PORT = 2003
# Oculus host; '' disables the mini namespace writes.
OCULUS_HOST = ''
# Segment after skyline.analyzer. in the analyzer's Graphite metrics ('' for none): letters, digits, '_', '-'
# and '.' only, as it becomes part of a Graphite path.
SERVER_METRICS_NAME = 'YOUR_HOSTNAME'

# ----------------------------------------------------------------------------------------------------
# Downstream Skyline apps
# ----------------------------------------------------------------------------------------------------

# Where Mirage check files are written (ENABLE_MIRAGE).
MIRAGE_CHECK_PATH = '/opt/skyline/mirage/check'
# Where Crucible check files are written.
CRUCIBLE_CHECK_PATH = '/opt/skyline/crucible/check'
# Where Panorama check files are written.
PANORAMA_CHECK_PATH = '/opt/skyline/panorama/check'

# ----------------------------------------------------------------------------------------------------
# Analyzer
# ----------------------------------------------------------------------------------------------------

# anomalies.json for the webapp (analyzer_run.json is written beside it); a relative path is resolved
# against the directory of this settings file, as v1.2.8 resolved it against its skyline/ directory.
ANOMALY_DUMP = '/var/lib/skyline/webapp/anomalies.json'
# Wrap anomalies.json as handle_data(<json>) (JSONP), as the original webapp expects; False = plain JSON.
ANOMALY_DUMP_JSONP = False
# Worker processes that analyse the metrics each run.
ANALYZER_PROCESSES = 1
# Analysis engine: 'fast' (batched, vectorised; identical verdicts) or 'reference' (per series, the oracle).
ANALYZER_ENGINE = 'fast'
# Minimum seconds per run: a faster run sleeps for the rest.
ANALYZER_OPTIMUM_RUN_DURATION = 60
# Seconds after which a worker is killed and the run carries on.
MAX_ANALYZER_PROCESS_RUNTIME = 180
# Where the analysis runs (docs/scale-out.md): 'local' forks ANALYZER_PROCESSES workers on this machine;
# 'dask' sends it to the Dask scheduler below (install the package's `dask` extra).
ANALYZER_EXECUTOR = 'local'
# The Dask scheduler's address, with ANALYZER_EXECUTOR = 'dask'.
DASK_SCHEDULER_ADDRESS = 'tcp://127.0.0.1:8786'
# Work units (ranges of Redis Cluster hash slots) a run is split into for Dask: a few per Dask worker thread.
DASK_UNITS_PER_RUN = 64
# Seconds to wait for the Dask scheduler before the run counts every metric as unprocessed.
DASK_CONNECT_TIMEOUT = 10.0
# A series whose last datapoint is older than this (s) is Stale and not analysed.
STALE_PERIOD = 500
# Send the stale-metrics digest.
ALERT_ON_STALE_METRICS = True
# A series this many seconds old (but not yet Stale) goes into the stale digest.
ALERT_ON_STALE_PERIOD = 300
# Metrics (substring or dotted-element match) never put in the stale digest.
DO_NOT_ALERT_ON_STALE_METRICS = ['donot_alert_on_stale.metric_known_to_go_stale']
# A series with fewer datapoints is TooShort.
MIN_TOLERABLE_LENGTH = 1
# How many trailing datapoints the Boring test looks at.
MAX_TOLERABLE_BOREDOM = 100
# Boring when those datapoints hold exactly this many distinct values.
BOREDOM_SET_SIZE = 1
# A reliable metric whose span gives the duration/projected canary metrics.
CANARY_METRIC = 'statsd.numStats'
# The consensus algorithms, run in this order (cheap, frequently-False ones first).
ALGORITHMS = ['histogram_bins',
              'first_hour_average',
              'stddev_from_average',
              'grubbs',
              'ks_test',
              'mean_subtraction_cumulation',
              'median_absolute_deviation',
              'stddev_from_moving_average',
              'least_squares']
# How many algorithms must agree for an anomaly (at most len(ALGORITHMS)).
CONSENSUS = 6
# Stop running algorithms once consensus is impossible (never changes a verdict).
RUN_OPTIMIZED_WORKFLOW = True
# Record per-algorithm run counts and timings and send them to Graphite.
ENABLE_ALGORITHM_RUN_METRICS = True
# Run and time every algorithm (disables the early exit; for benchmarking).
ENABLE_ALL_ALGORITHMS_RUN_METRICS = False
# Series per worker per run whose complete votes are kept for `skyline-analyzer tune` (0 records nothing).
TUNE_SAMPLE_SIZE = 10
# Runs of tune records kept in Redis (analyzer.tune): a day at one run a minute.
TUNE_HISTORY_RUNS = 1440
# Also require the trigger interval itself to be anomalous (is_anomalously_anomalous).
ENABLE_SECOND_ORDER = False
# Send alerts for anomalous metrics matching ALERTS.
ENABLE_ALERTS = True
# Hand metrics matched by 4-element ALERTS tuples to Mirage.
ENABLE_MIRAGE = False
# Also alert at FULL_DURATION on metrics handed to Mirage.
ENABLE_FULL_DURATION_ALERTS = True
# Write Crucible files for anomalies (ENABLE_CRUCIBLE must be on too).
ANALYZER_CRUCIBLE_ENABLED = False
# Crucible master switch.
ENABLE_CRUCIBLE = True
# Where Crucible data is written.
CRUCIBLE_DATA_FOLDER = '/opt/skyline/crucible/data'
# Write Panorama check files for anomalies.
PANORAMA_ENABLED = True
# Route anomalies and training data to Ionosphere.
IONOSPHERE_ENABLED = True
# Where Ionosphere check files are written.
IONOSPHERE_CHECK_PATH = '/opt/skyline/ionosphere/check'
# Where Ionosphere training data is written.
IONOSPHERE_DATA_FOLDER = '/opt/skyline/ionosphere/data'
# Ionosphere features profiles (validated only).
IONOSPHERE_PROFILES_FOLDER = '/opt/skyline/ionosphere/features_profiles'
# TTL (s) of ionosphere.training_data.* keys.
IONOSPHERE_KEEP_TRAINING_TIMESERIES_FOR = 86400
# Base URL of the Skyline webapp, for links in alerts.
SKYLINE_URL = 'https://skyline.example.com'
# Memcached use by other Skyline apps (validated only).
MEMCACHE_ENABLED = False
# Memcached host (validated only).
MEMCACHED_SERVER_IP = '127.0.0.1'
# Memcached port (validated only).
MEMCACHED_SERVER_PORT = 11211
# Luminosity correlation threshold, strictly between 0 and 1 (validated only).
LUMINOL_CROSS_CORRELATION_THRESHOLD = 0.9
# Other Skyline Redis instances (validated only).
OTHER_SKYLINE_REDIS_INSTANCES = []
# Monotonic metrics that must not be analysed as their derivative.
NON_DERIVATIVE_MONOTONIC_METRICS = ['the_namespace_of_the_monotonic_metric_to_not_calculate_the_derivative_for']

# ----------------------------------------------------------------------------------------------------
# Alerts
# ----------------------------------------------------------------------------------------------------

# Alert tuples (pattern, alerter, EXPIRATION_TIME[, SECOND_ORDER_RESOLUTION_HOURS]); the first matching
# tuple per alerter wins. The pattern must compile as a regex; the alerter is smtp, syslog, slack,
# pagerduty, webhook or an e-mail address (hipchat is retired); both times are positive ints.
ALERTS = [('skyline', 'smtp', 1800),
          ('skyline_test.alerters.test', 'smtp', 1800),
          ('skyline_test.alerters.test', 'pagerduty', 1800)]
# Attach a plot of the Redis series to smtp alerts.
PLOT_REDIS_DATA = True
# smtp alerter: sender, recipients per ALERTS pattern, default_recipient, embed-images.
SMTP_OPTS = {'sender': 'skyline@your_domain.com',
             'recipients': {'skyline': ['you@your_domain.com', 'them@your_domain.com'],
                            'skyline_test.alerters.test': ['you@your_domain.com']},
             'default_recipient': ['you@your_domain.com'],
             'embed-images': True}
# SMTP server host the smtp alerter and the stale digest send through.
SMTP_HOST = '127.0.0.1'
# SMTP server port.
SMTP_PORT = 25
# SMTP AUTH user name ('' = no authentication).
SMTP_USER = ''
# SMTP AUTH password.
SMTP_PASSWORD = ''
# Upgrade the SMTP connection with STARTTLS before sending.
SMTP_STARTTLS = False
# Connect with TLS from the start (SMTPS, usually SMTP_PORT = 465); SMTP_STARTTLS then has no effect.
SMTP_SSL = False
# Sender of the legacy e-mail-address alerter (an ALERTS tuple naming an address); None uses SMTP_OPTS' sender.
ALERT_SENDER = None
# Seconds any network alerter may block; a slower receiver is abandoned, logged and retried next run.
ALERT_TIMEOUT = 15.0
# How many alerts of one run are sent at the same time.
ALERT_CONCURRENCY = 10
# Seconds one run may spend sending all its alerts; alerts unfinished by then are retried next run.
ALERT_DISPATCH_TIMEOUT = 60.0
# Metric names whose match against the smtp ALERTS patterns the Analyzer remembers from one run to the next
# (about 150 bytes each); beyond, the other names are matched again every run.
ALERT_MATCH_CACHE_SIZE = 1000000
# Enable the syslog alerter.
SYSLOG_ENABLED = True
# syslog alerter options: ident, and address (socket path, or [host, port] for UDP).
SYSLOG_OPTS = {'ident': 'skyline', 'address': '/dev/log'}
# HipChat is discontinued; kept for settings compatibility only.
HIPCHAT_ENABLED = False
# HipChat options (unused).
HIPCHAT_OPTS = {'auth_token': 'hipchat_auth_token',
                'sender': 'hostname or identifier',
                'rooms': {'skyline': (12345,), 'skyline_test.alerters.test': (12345,)},
                'color': 'purple'}
# Enable the pagerduty alerter.
PAGERDUTY_ENABLED = False
# pagerduty alerter options (Events API v2: routing_key, events_url, severity).
PAGERDUTY_OPTS = {'subdomain': 'example',
                  'auth_token': 'your_pagerduty_auth_token',
                  'key': 'your_pagerduty_service_api_key',
                  'routing_key': 'your_pagerduty_events_v2_routing_key',
                  'events_url': 'https://events.pagerduty.com/v2/enqueue',
                  'severity': 'error'}
# Enable the slack alerter (slack ALERTS tuples must follow the smtp ones).
SLACK_ENABLED = False
# slack alerter options: token, channels per ALERTS pattern, icon, webhook_url (used instead of the
# token when set), api_url (the Web API base).
SLACK_OPTS = {'bot_user_oauth_access_token': 'YOUR_slack_bot_user_oauth_access_token',
              'channels': {'skyline': ('#general',), 'skyline_test.alerters.test': ('#general',)},
              'icon_emoji': ':chart_with_upwards_trend:',
              'webhook_url': '',
              'api_url': 'https://slack.com/api'}
# Enable the generic webhook alerter (a JSON POST per alert).
WEBHOOK_ENABLED = False
# webhook alerter options: urls per ALERTS pattern, default_urls, extra request headers.
WEBHOOK_OPTS = {'urls': {'skyline': ['https://hooks.example.com/skyline']},
                'default_urls': [],
                'headers': {}}

# ----------------------------------------------------------------------------------------------------
# Webapp (skyline-analyzer webapp: read-only pages and a JSON API, docs/webapp.md)
# ----------------------------------------------------------------------------------------------------

# Address the web app listens on; '0.0.0.0' for every interface.
WEBAPP_IP = '127.0.0.1'
# Port the web app listens on.
WEBAPP_PORT = 1500
# Ask for HTTP basic auth (use it behind TLS: the password crosses the wire in clear otherwise).
WEBAPP_AUTH_ENABLED = False
# The basic-auth user name.
WEBAPP_AUTH_USER = 'admin'
# The basic-auth password (required when WEBAPP_AUTH_ENABLED is True).
WEBAPP_AUTH_USER_PASSWORD = ''
# Client addresses or networks allowed to connect; [] allows every client.
WEBAPP_ALLOWED_IPS = ['127.0.0.1', '::1']
# Longest query string accepted, in bytes; a longer one is answered 414.
WEBAPP_MAX_QUERY_BYTES = 2048
# Most metric names one prefix search returns.
WEBAPP_MAX_SEARCH_RESULTS = 100
# Seconds the sorted list of metric names is reused before unique_metrics is read again.
WEBAPP_METRICS_CACHE_SECONDS = 10
# Largest Redis value of a series the web app decodes, in bytes.
WEBAPP_MAX_SERIES_BYTES = 33554432
# Largest anomaly dump (and run report) the web app reads, in bytes.
WEBAPP_MAX_DUMP_BYTES = 16777216
# Most anomalies listed on the Now page (the API lists every one).
WEBAPP_MAX_ANOMALIES_SHOWN = 5000

# ----------------------------------------------------------------------------------------------------
# Horizon
# ----------------------------------------------------------------------------------------------------

# Horizon worker processes writing datapoints to Redis.
WORKER_PROCESSES = 2
# Address the Horizon listeners bind to ('' is refused: write '0.0.0.0' to listen on every interface).
HORIZON_IP = 'YOUR_SKYLINE_INTSANCE_IP_ADDRESS'
# Carbon pickle protocol port (carbon-relay destination).
PICKLE_PORT = 2024
# UDP msgpack port ([name, [ts, value]] per datagram).
UDP_PORT = 2025
# Carbon plaintext line protocol port ('name value timestamp' lines); not 2003, which carbon owns.
PLAINTEXT_PORT = 2026
# Largest pickle frame accepted, in bytes; a bigger length prefix closes the connection unread.
MAX_PICKLE_FRAME_BYTES = 1048576
# Seconds a partly filled chunk may wait before the listener queues it anyway.
CHUNK_FLUSH_INTERVAL = 1.0
# A listener queues a chunk once it holds more than this many datapoints.
CHUNK_SIZE = 10
# Capacity of the listener-to-worker queue, in chunks; overflow is dropped and counted.
MAX_QUEUE_SIZE = 500
# Connections each TCP listener (pickle, plaintext) holds open. Past it, a newcomer takes the place of a
# connection that never sent a datapoint (or of one idle 10 s), else it is refused. Keep it below the
# process's file-descriptor limit (LimitNOFILE in etc/systemd/horizon.service); Horizon lowers it to fit.
HORIZON_MAX_CONNECTIONS = 1000
# Seconds a TCP connection may send nothing before it is closed (clients such as carbon-relay reconnect).
HORIZON_IDLE_TIMEOUT = 300.0
# Bytes of partial frames and lines one TCP listener holds over all its connections; past it, the
# connection holding the most is closed. At least MAX_PICKLE_FRAME_BYTES + 4.
HORIZON_MAX_BUFFERED_BYTES = 33554432
# Longest metric name accepted, in UTF-8 bytes; longer names are refused and counted.
HORIZON_MAX_NAME_BYTES = 1024
# Memory, in bytes, of each per-process cache of metric names (valid names, skip decisions).
HORIZON_CACHE_BYTES = 16777216
# Seconds between Horizon's counter reports to Graphite, each the sum over its interval. Match the finest
# retention of your storage-schemas.conf for skyline.* (docs/graphite.md): a finer report is overwritten.
HORIZON_REPORT_INTERVAL = 60
# Processes that trim the series each Roomba pass.
ROOMBA_PROCESSES = 1
# Seconds kept beyond FULL_DURATION before Roomba trims.
ROOMBA_GRACE_TIME = 600
# Seconds before a Roomba pass is killed.
ROOMBA_TIMEOUT = 100
# Bytes of values Roomba reads from Redis in one batch (about: judged by the largest value read so far).
ROOMBA_BATCH_BYTES = 8388608
# Horizon drops datapoints older than this many seconds.
MAX_RESOLUTION = 1000
# The second stage (docs/second-stage.md), off by default. Horizon keeps each series averaged over
# SECOND_STAGE_RESOLUTION seconds for SECOND_STAGE_DURATION seconds in second_stage.<key>. A metric the
# first stage flags is reported only if its tail is more than SECOND_STAGE_THRESHOLD robust z-scores from
# the same time of day on earlier days; a metric short of CONSENSUS but with at least SECOND_STAGE_MIN_VOTES
# votes is reported only if its tail is that unusual for the time of day and the ALGORITHMS reach CONSENSUS
# on the longer history, its daily profile removed. The first stage itself runs exactly as with it off.
SECOND_STAGE_ENABLED = False
# Votes, among the algorithms the first stage ran before its early exit, that make a metric nearly flagged
# (at most CONSENSUS; CONSENSUS re-checks only the flags). 1: any triggered algorithm. The stage costs its
# work on these metrics only (docs/second-stage.md#cost).
SECOND_STAGE_MIN_VOTES = 1
# Seconds of downsampled history kept and searched (7 days).
SECOND_STAGE_DURATION = 604800
# Seconds per bucket of the downsampled history, and between Horizon's passes that extend it.
SECOND_STAGE_RESOLUTION = 600
# The seasonal period in seconds (a day).
SECOND_STAGE_PERIOD = 86400
# Half-width in seconds of the neighbourhood of the same time on each earlier period.
SECOND_STAGE_WINDOW = 3600
# Earlier periods needed to judge; with fewer, the first stage's verdict stands.
SECOND_STAGE_MIN_PERIODS = 3
# Robust z-score above which a flagged metric is still anomalous.
SECOND_STAGE_THRESHOLD = 3.5
# Metrics Horizon does not store (substring or dotted-element match).
SKIP_LIST = ['skyline.analyzer.', 'skyline.boundary.', 'skyline.ionosphere.', 'skyline.mirage.']
# Exceptions to SKIP_LIST.
DO_NOT_SKIP_LIST = ['skyline.analyzer.run_time',
                    'skyline.boundary.run_time',
                    'skyline.analyzer.ionosphere_metrics',
                    'skyline.analyzer.mirage_metrics',
                    'skyline.analyzer.total_analyzed',
                    'skyline.analyzer.total_anomalies']
