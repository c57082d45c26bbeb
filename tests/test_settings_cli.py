"""Which settings file a command uses (docs/install.md#settings): ``settings init``, ``--settings`` before or
after the sub-command over ``$SKYLINE_SETTINGS``, daemons refusing the built-in defaults, nothing read from
beside the package."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import skyline_analyzer
from skyline_analyzer import config
from tests.support import CLI, REPO, settings_env


def cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {key: value for key, value in os.environ.items() if key != "SKYLINE_SETTINGS"}
    return subprocess.run([*CLI, *args], cwd=cwd, env={**environ, **env}, capture_output=True, text=True,
                          timeout=120)


def test_init_writes_the_template_private_and_never_replaces_a_file(tmp_path: Path) -> None:
    written = cli("settings", "init", "s.py", cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    path = tmp_path / "s.py"
    assert path.read_bytes() == (REPO / "settings.py").read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) & 0o007 == 0
    path.write_text("CONSENSUS = 5\n")
    again = cli("settings", "init", "s.py", cwd=tmp_path)
    assert again.returncode == 1 and "--force" in again.stderr and path.read_text() == "CONSENSUS = 5\n"
    forced = cli("settings", "init", "--force", "s.py", cwd=tmp_path)
    assert forced.returncode == 0 and config.load(path).CONSENSUS == 6


@pytest.mark.parametrize("command", ["run", "horizon", "webapp"])
def test_daemons_refuse_to_run_without_a_settings_file(command: str, tmp_path: Path) -> None:
    result = cli(command, cwd=tmp_path)
    assert result.returncode == 1
    assert "no settings file: pass --settings PATH or set SKYLINE_SETTINGS" in result.stderr


def test_other_commands_say_they_use_the_defaults(tmp_path: Path) -> None:
    series = tmp_path / "series.json"
    series.write_text("[[1700000000, 1.0], [1700000060, 1.0]]")
    result = cli("check", str(series), cwd=tmp_path)
    assert "no settings file" in result.stderr and "built-in defaults" in result.stderr


@pytest.mark.parametrize("before", [True, False], ids=["before", "after"])
def test_settings_option_overrides_the_environment(before: bool, make_settings: Callable[..., Path],
                                                   tmp_path: Path) -> None:
    good = make_settings(SYSLOG_ENABLED=False)
    bad = tmp_path / "bad.py"
    bad.write_text("CONSENSUS = 'many'\n")
    option = ["--settings", str(good)]
    args = [*option, "alert-test", "no.alert.matches"] if before else ["alert-test", "no.alert.matches", *option]
    result = subprocess.run([*CLI, *args], env=settings_env(bad), capture_output=True,
                            text=True, timeout=120)
    # The good file was read (syslog off, no tuple matches); the bad one would have stopped on CONSENSUS.
    assert "no ALERTS tuple matches 'no.alert.matches' and syslog is off" in result.stderr, result.stderr


def test_nothing_is_read_from_beside_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKYLINE_SETTINGS", raising=False)
    assert config.settings_path() is None
    assert config.load().source == "<defaults>"
    package = Path(skyline_analyzer.__file__).resolve().parent
    assert (package / "data" / "settings.py").read_bytes() == (REPO / "settings.py").read_bytes()
