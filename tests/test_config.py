"""Settings: the operator's file mirrors the defaults and comments each one, SKYLINE_SETTINGS is honoured,
missing settings take their default. The rules themselves: test_settings_rules.py; the file: test_settings_file.py."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

from skyline_analyzer import config
from skyline_analyzer.defaults import DEFAULTS
from skyline_analyzer.exceptions import SettingsError
from tests.support import REPO


def test_operator_file_states_every_default() -> None:
    assert config.read_settings_file(REPO / "settings.py").values == DEFAULTS


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


def test_every_problem_is_reported_at_once(make_settings: Callable[..., Path]) -> None:
    with pytest.raises(SettingsError) as raised:
        config.load(make_settings(STALE_PERIOD=0, CONSENSUS=12))
    assert len(raised.value.problems) == 2
