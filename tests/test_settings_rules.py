"""Every setting's type and range are checked at start-up; secrets are never printed; messages are bounded.

Each case appends Python source to a copy of the operator's settings file (``{tmp}`` is the test's temp
dir, holding ``a-file`` and ``a-dir``) and expects a message fragment naming the setting and the rule.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from skyline_analyzer import config, schema
from skyline_analyzer.defaults import DEFAULTS
from skyline_analyzer.exceptions import SettingsError


@pytest.fixture
def problems(make_settings: Callable[..., Path], tmp_path: Path) -> Callable[[str], list[str]]:
    """The problems of the operator's file with ``source`` appended; [] when it loads."""
    (tmp_path / "a-file").write_text("not a directory\n")
    (tmp_path / "a-dir").mkdir()

    def load(source: str) -> list[str]:
        path = make_settings()
        with path.open("a") as handle:
            handle.write(source.replace("{tmp}", str(tmp_path)) + "\n")
        try:
            config.load(path)
        except SettingsError as exc:
            return exc.problems
        return []

    return load


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        # ports
        ("REDIS_PORT = -1", "REDIS_PORT must be a port number (1..65535), got -1"),
        ("REDIS_PORT = 70000", "REDIS_PORT must be a port number (1..65535), got 70000"),
        ("CARBON_PORT = 70000", "CARBON_PORT must be a port number (1..65535), got 70000"),
        ("SMTP_PORT = 70000", "SMTP_PORT must be a port number (1..65535), got 70000"),
        ("PICKLE_PORT = 0", "PICKLE_PORT must be a port number (1..65535), got 0"),
        ("UDP_PORT = 65536", "UDP_PORT must be a port number (1..65535), got 65536"),
        ("PLAINTEXT_PORT = 70000", "PLAINTEXT_PORT must be a port number (1..65535), got 70000"),
        ("MEMCACHED_SERVER_PORT = -5", "MEMCACHED_SERVER_PORT must be a port number (1..65535), got -5"),
        ("GRAPHITE_PORT = '70000'", "GRAPHITE_PORT must be '' or a port number (1..65535), got '70000'"),
        ("SYSLOG_OPTS = {'ident': 'sky', 'address': ['127.0.0.1', 70000]}",
         "SYSLOG_OPTS['address'][1] must be a port number (1..65535), got 70000"),
        # periods, counts and timeouts
        ("ALERT_ON_STALE_PERIOD = -1", "ALERT_ON_STALE_PERIOD must be 0 or more, got -1"),
        ("ROOMBA_GRACE_TIME = -1", "ROOMBA_GRACE_TIME must be 0 or more, got -1"),
        ("STALE_PERIOD = 0", "STALE_PERIOD must be positive, got 0"),
        ("FULL_DURATION = 2**40", "FULL_DURATION must be at most 2147483647, got 1099511627776"),
        ("ANALYZER_PROCESSES = 5000", "ANALYZER_PROCESSES must be at most 1024, got 5000"),
        ("MAX_ANALYZER_PROCESS_RUNTIME = True", "MAX_ANALYZER_PROCESS_RUNTIME must be int, got bool True"),
        ("ALERT_TIMEOUT = float('nan')", "ALERT_TIMEOUT must be a positive number of seconds, got nan"),
        ("CHUNK_FLUSH_INTERVAL = float('inf')", "CHUNK_FLUSH_INTERVAL must be a positive number of seconds"),
        ("HORIZON_MAX_CONNECTIONS = 0", "HORIZON_MAX_CONNECTIONS must be positive, got 0"),
        ("HORIZON_IDLE_TIMEOUT = -1", "HORIZON_IDLE_TIMEOUT must be a positive number of seconds, got -1"),
        ("HORIZON_MAX_NAME_BYTES = -5", "HORIZON_MAX_NAME_BYTES must be positive, got -5"),
        ("HORIZON_CACHE_BYTES = 0", "HORIZON_CACHE_BYTES must be positive, got 0"),
        ("HORIZON_REPORT_INTERVAL = 0.5", "HORIZON_REPORT_INTERVAL must be int, got float 0.5"),
        ("HORIZON_REPORT_INTERVAL = 0", "HORIZON_REPORT_INTERVAL must be 1 to 86400 seconds, got 0"),
        ("HORIZON_MAX_BUFFERED_BYTES = 1000",
         "HORIZON_MAX_BUFFERED_BYTES = 1000 must hold one whole pickle frame: MAX_PICKLE_FRAME_BYTES + 4 = 1048580"),
        # ALERTS rows
        ("ALERTS = [('stats', 'pagerdooty', 60)]",
         "ALERTS[0] alerter 'pagerdooty' is not an alerter (did you mean 'pagerduty'?)"),
        ("ALERTS = [('stats', 'smtp', 60), ('stats', 'carrier_pigeon', 60)]",
         "ALERTS[1] alerter 'carrier_pigeon' is not an alerter (use smtp, syslog, slack, pagerduty, webhook"),
        ("ALERTS = [('stats[', 'smtp', 60)]",
         "ALERTS[0] pattern must be a regular expression that compiles (unterminated character set"),
        ("ALERTS = [('stats', 'smtp', -1)]", "ALERTS[0] EXPIRATION_TIME must be positive, got -1"),
        ("ALERTS = [('stats', 'smtp', '60')]", "ALERTS[0] EXPIRATION_TIME must be int, got str '60'"),
        ("ALERTS = [('stats', 'smtp', 60, 0)]", "ALERTS[0] SECOND_ORDER_RESOLUTION_HOURS must be positive, got 0"),
        ("ALERTS = [('stats', 'smtp')]", "ALERTS[0] must be (pattern, alerter, EXPIRATION_TIME"),
        ("ALERTS = [('stats', 'on call@example.com', 60)]", "ALERTS[0] alerter 'on call@example.com' is not an"),
        # values that reach a socket, a carbon line, a header or a file name
        ("HORIZON_IP = ''", "HORIZON_IP = '' would listen on every interface: write '0.0.0.0'"),
        ("HORIZON_IP = '10.0.0.1 '", "HORIZON_IP must be free of whitespace, got '10.0.0.1 '"),
        ("SERVER_METRICS_NAME = 'host 1\\nskyline.injected 1 1'",
         "SERVER_METRICS_NAME must be '' or dot-separated parts of letters, digits, '_' and '-', "
         "got 'host 1\\nskyline.injected 1 1'"),
        ("SERVER_METRICS_NAME = 'a..b'", "SERVER_METRICS_NAME must be '' or dot-separated parts"),
        ("CANARY_METRIC = 'a\\x1b[31mb'", "CANARY_METRIC must be printable text (no control characters)"),
        ("SMTP_OPTS = {'sender': 'sky@example.com\\nBcc: all@example.com'}",
         "SMTP_OPTS['sender'] must be printable text (no control characters)"),
        ("SMTP_OPTS = {'sender': 'sky@example.com', 'defualt_recipient': ['a@example.com']}",
         "SMTP_OPTS['defualt_recipient'] is not a known key (did you mean 'default_recipient'?)"),
        ("PAGERDUTY_OPTS = {'routing_key': 'r', 'severity': 'meh'}",
         "PAGERDUTY_OPTS['severity'] must be one of 'critical', 'error', 'warning', 'info', got 'meh'"),
        ("SKYLINE_URL = 'javascript:alert(1)'", "SKYLINE_URL must be an http:// or https:// URL"),
        ("GRAPHITE_PROTOCOL = 'gopher'", "GRAPHITE_PROTOCOL must be one of 'http', 'https', got 'gopher'"),
        ("SKIP_LIST = ['']", "SKIP_LIST[0] must be non-empty, got ''"),
        ("REDIS_HOST = 'my host'", "REDIS_HOST must be free of whitespace"),
        # paths
        ("SKYLINE_TMP_DIR = '{tmp}/a-file'", "SKYLINE_TMP_DIR must be a directory (it names an existing file)"),
        ("SKYLINE_TMP_DIR = 'relative/tmp'", "SKYLINE_TMP_DIR must be an absolute path"),
        ("ANOMALY_DUMP = '{tmp}/a-dir'", "ANOMALY_DUMP must be a file name (it names an existing directory)"),
        ("ANOMALY_DUMP = '{tmp}/a-file/anomalies.json'", "ANOMALY_DUMP must be creatable"),
        ("LOG_PATH = '{tmp}/a-file'", "LOG_PATH must be a directory (it names an existing file)"),
        ("PID_PATH = ''", "PID_PATH must be non-empty, got ''"),
        ("REDIS_SOCKET_PATH = '/x' * 60", "REDIS_SOCKET_PATH must be at most 107 bytes"),
        # names
        ("CONSENSSUS = 9", "unknown setting CONSENSSUS (did you mean CONSENSUS?)"),
        ("ANALYSER_PROCESSES = 2", "unknown setting ANALYSER_PROCESSES (did you mean ANALYZER_PROCESSES?)"),
        ("FROBNICATE = 1", "unknown setting FROBNICATE (not a skyline-analyzer setting"),
        # algorithms, consensus, engine, types
        ("ALGORITHMS = ['grubbs', 'alwaysTrue']", "ALGORITHMS[1] 'alwaysTrue' is not a Skyline algorithm (known:"),
        ("ALGORITHMS = ['grubs']", "ALGORITHMS[0] 'grubs' is not a Skyline algorithm (did you mean 'grubbs'?)"),
        ("ALGORITHMS = []", "ALGORITHMS must name at least one algorithm"),
        ("ALGORITHMS = ['grubbs', 'grubbs']", "ALGORITHMS names an algorithm more than once"),
        ("ALGORITHMS = 'grubbs'", "ALGORITHMS must be list or tuple, got str 'grubbs'"),
        ("CONSENSUS = 10", "CONSENSUS = 10 is more than the 9 ALGORITHMS: nothing could ever be anomalous"),
        ("ALGORITHMS = ['grubbs', 'ks_test']\nCONSENSUS = 3", "CONSENSUS = 3 is more than the 2 ALGORITHMS"),
        ("ANALYZER_ENGINE = 'turbo'", "ANALYZER_ENGINE must be one of 'fast', 'reference', got 'turbo'"),
        ("ANALYZER_OPTIMUM_RUN_DURATION = -1", "ANALYZER_OPTIMUM_RUN_DURATION must be positive, got -1"),
        ("ALERT_TIMEOUT = 0", "ALERT_TIMEOUT must be a positive number of seconds, got 0"),
        ("ALERT_CONCURRENCY = 0", "ALERT_CONCURRENCY must be positive, got 0"),
        ("MAX_ANALYZER_PROCESS_RUNTIME = '180'", "MAX_ANALYZER_PROCESS_RUNTIME must be int, got str '180'"),
        ("ENABLE_ALERTS = 'yes'", "ENABLE_ALERTS must be bool, got str 'yes'"),
        ("LUMINOL_CROSS_CORRELATION_THRESHOLD = 1.5",
         "LUMINOL_CROSS_CORRELATION_THRESHOLD must be between 0 and 1 (both excluded), got 1.5"),
        ("SLACK_ENABLED = True\nALERTS = [('a', 'slack', 60), ('a', 'smtp', 60)]",
         "ALERTS[0]: slack tuples must come after the smtp tuples"),
    ],
)
def test_a_bad_value_is_named_with_its_rule(problems, source: str, fragment: str) -> None:
    found = problems(source)
    assert any(fragment in problem for problem in found), found


def test_a_problem_names_the_file_and_line(problems, tmp_path: Path) -> None:
    found = problems("REDIS_PORT = 70000")
    assert len(found) == 1
    path, line, message = found[0].split(":", 2)
    assert path == str(tmp_path / "settings.py")
    assert (tmp_path / "settings.py").read_text().splitlines()[int(line) - 1] == "REDIS_PORT = 70000"
    assert message.startswith(" REDIS_PORT must be")


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("REDIS_PASSWORD = 31337", "REDIS_PASSWORD must be str or None, got int (value not shown: secret)"),
        ("SMTP_PASSWORD = b'hunter2'", "SMTP_PASSWORD must be str, got bytes (value not shown: secret)"),
        ("PAGERDUTY_OPTS = 'hunter2'", "PAGERDUTY_OPTS must be dict, got str (value not shown: secret)"),
        ("SLACK_OPTS = {'webhook_url': 'ftp://u:hunter2@hooks.example.com/'}",
         "SLACK_OPTS['webhook_url'] must be an http:// or https:// URL (value not shown: secret)"),
        ("SLACK_OPTS = {'bot_user_oauth_access_token': ['xoxb-hunter2']}",
         "SLACK_OPTS['bot_user_oauth_access_token'] must be str, got list (value not shown: secret)"),
        ("WEBHOOK_OPTS = {'headers': {'X-Token': 'hunter2\\r\\nX-Evil: 1'}}",
         "WEBHOOK_OPTS['headers']['X-Token'] must be printable text (no control characters) (value not shown"),
        ("WEBHOOK_OPTS = {'urls': {'stats': 'hunter2'}}",
         "WEBHOOK_OPTS['urls']['stats'] must be an http:// or https:// URL (value not shown: secret)"),
        ("OTHER_SKYLINE_REDIS_INSTANCES = ['hunter2']",
         "OTHER_SKYLINE_REDIS_INSTANCES[0] must be list or tuple, got str (value not shown: secret)"),
        ("GRAPH_URL = 'http://admin:hunter2@graphite host/render'",
         "GRAPH_URL must be free of whitespace, got <a URL with credentials>"),
        ("MY_API_TOKEN = 'hunter2'", "unknown setting MY_API_TOKEN"),
        ("REDIS_PASSWORD = int('hunter2')", "REDIS_PASSWORD: failed: ValueError (message not shown: secret)"),
    ],
)
def test_a_secret_is_never_printed(problems, source: str, fragment: str) -> None:
    found = problems(source)
    assert any(fragment in problem for problem in found), found
    assert not any("hunter2" in problem or "31337" in problem for problem in found)


@pytest.mark.parametrize(
    "source",
    [
        "SERVER_METRICS_NAME = 'x y' * 10**6",
        "REDIS_PORT = 10**5000",
        "_deep = []\nfor _ in range(100_000):\n    _deep = [_deep]\nSKIP_LIST = _deep",
        "SKIP_LIST = ['\\x00'] * 10**6",
        "ALERTS = [('[' * 10**5, 'x' * 10**6, 60)]",
        "ALERTS = [[{'k': ['v' * 10**6] * 1000}] * 1000]",
        "globals()['Q' * 100_000] = 1",
        "globals()['BAD\\nNAME\\x1b[2J'] = 1",
        "for _i in range(10_000):\n    globals()[f'UNKNOWN_{_i}'] = 1",
    ],
)
def test_messages_are_bounded_and_escaped(problems, tmp_path: Path, source: str) -> None:
    found = problems(source)
    assert 1 <= len(found) <= schema.PROBLEMS_PER_SETTING + config.UNKNOWN_REPORTED + 1
    prefix = len(str(tmp_path / "settings.py")) + 10
    for problem in found:
        assert len(problem) < prefix + 300, problem[:500]
        assert problem.isprintable(), problem[:500]


def test_many_bad_items_give_a_bounded_report(problems) -> None:
    found = problems("SKIP_LIST = [''] * 10**6")
    assert len(found) == schema.PROBLEMS_PER_SETTING + 1
    assert found[-1].endswith("SKIP_LIST: more problems not shown")


def test_every_setting_has_a_rule_and_the_defaults_pass() -> None:
    assert set(schema.SCHEMA) == set(DEFAULTS)
    assert schema.check(DEFAULTS) == []


@pytest.mark.parametrize("name", ["REDIS_PASSWORD", "SMTP_PASSWORD", "SLACK_OPTS", "ANY_TOKEN", "AN_API_KEY"])
def test_secret_names(name: str) -> None:
    assert schema.is_secret(name)
    assert not schema.is_secret("REDIS_PORT")
