"""Settings: the operator's file mirrors the defaults, SKYLINE_SETTINGS is honoured, bad values are named."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

from skyline_analyzer import config
from skyline_analyzer.defaults import DEFAULTS
from skyline_analyzer.exceptions import SettingsError
from tests.support import REPO, run_cli


def test_operator_file_states_every_default() -> None:
    values = config.read_settings_file(REPO / "settings.py")
    assert values == DEFAULTS


def test_every_setting_has_a_comment() -> None:
    lines = (REPO / "settings.py").read_text().splitlines()
    tree = ast.parse("\n".join(lines))
    for node in tree.body:
        if isinstance(node, ast.Assign):
            name = node.targets[0].id  # type: ignore[attr-defined]
            above = lines[node.lineno - 2].strip()
            assert above.startswith("#") and len(above) > 3, f"{name} has no comment line above it"


def test_skyline_settings_names_the_file(make_settings: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_settings(CONSENSUS=5)
    monkeypatch.setenv("SKYLINE_SETTINGS", str(path))
    settings = config.load()
    assert settings.CONSENSUS == 5 and settings.source == str(path)
    assert settings.FULL_DURATION == 86400


def test_missing_setting_falls_back_to_default(tmp_path: Path) -> None:
    path = tmp_path / "minimal.py"
    path.write_text("CONSENSUS = 4\n")
    settings = config.load(path)
    assert settings.CONSENSUS == 4 and settings.STALE_PERIOD == 500


def test_settings_are_read_only() -> None:
    settings = config.Settings({})
    with pytest.raises(AttributeError):
        settings.CONSENSUS = 3  # type: ignore[misc]
    assert settings.replace(CONSENSUS=3).CONSENSUS == 3 and settings.CONSENSUS == 6


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"ALGORITHMS": ["grubbs", "alwaysTrue"]}, "'alwaysTrue' is not a Skyline algorithm"),
        ({"CONSENSUS": 10}, "CONSENSUS = 10 is more than the 9 ALGORITHMS"),
        ({"ALGORITHMS": ["grubbs", "ks_test"], "CONSENSUS": 3}, "CONSENSUS = 3 is more than the 2"),
        ({"FULL_DURATION": 0}, "FULL_DURATION must be positive"),
        ({"ANALYZER_OPTIMUM_RUN_DURATION": -1}, "ANALYZER_OPTIMUM_RUN_DURATION must be positive"),
        ({"ALERT_TIMEOUT": 0}, "ALERT_TIMEOUT must be positive"),
        ({"ANALYZER_ENGINE": "turbo"}, "ANALYZER_ENGINE must be one of 'fast', 'reference', got 'turbo'"),
        ({"ALERT_CONCURRENCY": 0}, "ALERT_CONCURRENCY must be positive"),
        ({"MAX_ANALYZER_PROCESS_RUNTIME": "180"}, "MAX_ANALYZER_PROCESS_RUNTIME must be int, got str"),
        ({"ANALYZER_PROCESSES": True}, "ANALYZER_PROCESSES must be int, got bool"),
        ({"ENABLE_ALERTS": "yes"}, "ENABLE_ALERTS must be bool"),
        ({"ALGORITHMS": "grubbs"}, "ALGORITHMS must be list or tuple"),
        ({"LUMINOL_CROSS_CORRELATION_THRESHOLD": 1.5}, "LUMINOL_CROSS_CORRELATION_THRESHOLD must be between"),
        ({"ALERTS": [("skyline", "smtp")]}, "ALERTS[0] must be (pattern, alerter, EXPIRATION_TIME"),
        ({"SLACK_ENABLED": True, "ALERTS": [("a", "slack", 60), ("a", "smtp", 60)]}, "slack tuples must come after"),
    ],
)
def test_bad_values_are_named(
    overrides: dict, named: str, make_settings: Callable[..., Path]
) -> None:
    with pytest.raises(SettingsError) as raised:
        config.load(make_settings(**overrides))
    assert any(named in problem for problem in raised.value.problems), raised.value.problems


def test_every_problem_is_reported_at_once(make_settings: Callable[..., Path]) -> None:
    with pytest.raises(SettingsError) as raised:
        config.load(make_settings(STALE_PERIOD=0, CONSENSUS=12))
    assert len(raised.value.problems) == 2


def test_a_settings_file_that_does_not_load_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("CONSENSUS = (\n")
    with pytest.raises(SettingsError, match=r"broken\.py failed to load"):
        config.load(path)
    with pytest.raises(SettingsError, match="does not exist"):
        config.load(tmp_path / "absent.py")


def test_command_exits_non_zero_naming_the_setting(make_settings: Callable[..., Path]) -> None:
    path = make_settings(CONSENSUS=12)
    completed = run_cli(path, "check", str(REPO / "examples" / "metrics.json.gz"))
    assert completed.returncode == 1
    assert "CONSENSUS = 12" in completed.stderr and completed.stdout == ""
