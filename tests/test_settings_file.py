"""The settings file is hostile too: whatever is wrong with it gives one clear message naming the file, the
line and the setting, and exit status 1 from the command line and from bin/analyzer.d."""

from __future__ import annotations

import os
import string
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from skyline_analyzer import config
from skyline_analyzer.exceptions import SettingsError
from tests.support import REPO

SCRIPT = REPO / "bin" / "analyzer.d"
METRICS = REPO / "examples" / "metrics.json.gz"

HOSTILE = [
    (b"CONSENSUS = 1 / 0\n", ":1: CONSENSUS: failed: ZeroDivisionError: division by zero"),
    (b"CONSENSUS = 6\nFULL_DURATION = '\xff\xfe'\n", ":2: FULL_DURATION: not UTF-8 text (byte 0xff)"),
    (b"CONSENSUS = (\n", ":1: CONSENSUS: SyntaxError: '(' was never closed"),
    (b"import sys\nsys.exit(3)\n", ":2: failed: SystemExit: 3"),
    (b"def f():\n    return f()\n\nMAX_RESOLUTION = f()\n",
     ":4: MAX_RESOLUTION: failed: RecursionError: maximum recursion depth exceeded"),
    (b"ALERTS = [\n    ('a', 'smtp', 60),\n    ('b', 'smtp', undefined),\n]\n",
     ":3: ALERTS: failed: NameError: name 'undefined' is not defined"),
    (b"CONSENSUS = 6\x00\n", "contain null bytes"),
    (b"raise KeyError(10**5000)\n", ":1: failed: KeyError: <int of 16610 bits>"),
    (b"raise ValueError('\\x1b[2J' + 'x' * 10**6)\n", ":1: failed: ValueError: \\x1b[2Jxxxx"),
]


@pytest.mark.parametrize(("content", "fragment"), HOSTILE)
def test_a_file_that_does_not_run_is_one_message(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "settings.py"
    path.write_bytes(content)
    with pytest.raises(SettingsError) as raised:
        config.load(path)
    [problem] = raised.value.problems
    assert problem.startswith(str(path)) and fragment in problem, problem
    assert len(problem) < len(str(path)) + 200 and problem.isprintable()


def test_a_path_that_is_not_a_settings_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.py"
    os.mkfifo(fifo)  # reading it would block for ever
    for not_regular in (tmp_path, fifo):
        with pytest.raises(SettingsError, match="is not a regular file"):
            config.load(not_regular)
    with pytest.raises(SettingsError, match=r"absent\.py does not exist"):
        config.load(tmp_path / "absent.py")
    huge = tmp_path / "huge.py"
    huge.write_bytes(b"#" * config.MAX_SETTINGS_BYTES + b"\nCONSENSUS = 5\n")
    with pytest.raises(SettingsError, match=r"huge\.py: larger than 1048576 bytes: not a settings file"):
        config.load(huge)


@pytest.mark.parametrize(
    ("content", "setting", "value"),
    [
        (b"# -*- coding: latin-1 -*-\nSMTP_USER = 'caf\xe9'\n", "SMTP_USER", "caf\u00e9"),
        (b"\xef\xbb\xbfCONSENSUS = 5\n", "CONSENSUS", 5),
        (b"from string import ascii_letters as SMTP_USER\n", "SMTP_USER", string.ascii_letters),
    ],
)
def test_declared_encodings_and_imported_settings_are_honoured(tmp_path: Path, content: bytes, setting: str,
                                                                value: object) -> None:
    path = tmp_path / "settings.py"
    path.write_bytes(content)
    assert config.load(path)[setting] == value


def test_helpers_underscores_and_imports_are_not_settings(tmp_path: Path) -> None:
    path = tmp_path / "settings.py"
    path.write_text(
        "import os\nimport os.path as OSP\nfrom errno import *\nfrom errno import ENOENT as NOT_FOUND\n"
        "helper = 1\n_PRIVATE = 2\n_base = os.path.join('/var', 'log')\nLOG_PATH = _base\n"
    )
    settings = config.load(path)
    assert settings.LOG_PATH == "/var/log"
    assert "NOT_FOUND" not in settings and "EPERM" not in settings and "_PRIVATE" not in settings


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"CONSENSUS = 1 / 0\n", ":1: CONSENSUS: failed: ZeroDivisionError"),
        (b"FULL_DURATION = '\xff'\n", ":1: FULL_DURATION: not UTF-8 text"),
        (b"CONSENSSUS = 5\n", ":1: unknown setting CONSENSSUS (did you mean CONSENSUS?)"),
        (b"CARBON_PORT = '2003'\n", ":1: CARBON_PORT must be int, got str '2003'"),
    ],
)
def test_the_command_exits_1_with_the_message(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "settings.py"
    path.write_bytes(content)
    completed = subprocess.run([sys.executable, "-m", "skyline_analyzer", "check", str(METRICS)],
                               env={**os.environ, "SKYLINE_SETTINGS": str(path)}, capture_output=True, text=True,
                               timeout=120)
    assert completed.returncode == 1 and completed.stdout == ""
    assert completed.stderr.startswith("error :: invalid settings:\n") and f"{path}{fragment}" in completed.stderr


def shell_settings(path: Path, *names: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-P", "-m", "skyline_analyzer.config", *names], cwd=cwd,
                          env={**os.environ, "SKYLINE_SETTINGS": str(path)}, capture_output=True, text=True,
                          timeout=60)


def test_settings_for_a_shell_are_quoted(make_settings: Callable[..., Path], tmp_path: Path) -> None:
    odd = tmp_path / "log $(touch pwned) 'q' `touch pwned`"
    odd.mkdir()
    path = make_settings(LOG_PATH=str(odd))
    with path.open("a") as handle:
        handle.write("print('LOG_PATH=/forged')\n")
    script = 'eval "$("$0" -P -m skyline_analyzer.config LOG_PATH MAX_RESOLUTION)"; printf %s "$LOG_PATH"'
    completed = subprocess.run(["bash", "-c", script, sys.executable], cwd=tmp_path, capture_output=True,
                               text=True, env={**os.environ, "SKYLINE_SETTINGS": str(path)}, timeout=60)
    assert completed.returncode == 0 and completed.stdout == str(odd)
    assert "LOG_PATH=/forged" in completed.stderr
    assert not (tmp_path / "pwned").exists()


def test_settings_for_a_shell_refuse_secrets_and_unknown_names(make_settings: Callable[..., Path]) -> None:
    path = make_settings(REDIS_PASSWORD="hunter2")
    for name in ("REDIS_PASSWORD", "NO_SUCH_SETTING"):
        completed = shell_settings(path, name)
        assert completed.returncode == 2 and completed.stdout == "" and "hunter2" not in completed.stderr
        assert f"{name} is not a setting that can be printed" in completed.stderr


def test_analyzer_d_refuses_invalid_settings_without_printing_secrets(make_settings: Callable[..., Path]) -> None:
    env = {**os.environ, "SKYLINE_CONF": "/nonexistent"}
    valid = subprocess.run([str(SCRIPT), "status"], capture_output=True, text=True, timeout=60,
                           env={**env, "SKYLINE_SETTINGS": str(make_settings())})
    assert valid.returncode == 3 and "analyzer is not running" in valid.stdout
    path = make_settings(REDIS_PORT=70000, REDIS_PASSWORD=12345678)
    for action in ("status", "start", "stop"):
        completed = subprocess.run([str(SCRIPT), action], capture_output=True, text=True, timeout=60,
                                   env={**env, "SKYLINE_SETTINGS": str(path)})
        assert completed.returncode == 1
        assert "error - invalid settings: nothing done" in completed.stdout
        assert f"{path}:" in completed.stderr and "REDIS_PORT must be a port number (1..65535), got 70000" in (
            completed.stderr)
        assert "REDIS_PASSWORD must be str or None, got int (value not shown: secret)" in completed.stderr
        assert "12345678" not in completed.stdout + completed.stderr
