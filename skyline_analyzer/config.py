"""Loading and validating the operator's settings file.

The file is plain Python (``settings.py``): every UPPER_CASE name it defines is a setting. It is found
through ``$SKYLINE_SETTINGS`` when set, else ``settings.py`` beside the package. A setting the file does
not define takes its default from :mod:`skyline_analyzer.defaults`.
"""

from __future__ import annotations

import os
import runpy
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from skyline_analyzer.defaults import DEFAULTS
from skyline_analyzer.exceptions import SettingsError

#: The environment variable naming the settings file to read.
SETTINGS_ENV = "SKYLINE_SETTINGS"
#: The operator's file in a source checkout.
BUNDLED_SETTINGS = Path(__file__).resolve().parent.parent / "settings.py"


class Settings(Mapping[str, Any]):
    """Read-only settings with attribute access (``settings.FULL_DURATION``)."""

    def __init__(self, values: Mapping[str, Any], source: str = "<defaults>") -> None:
        merged = dict(DEFAULTS)
        merged.update(values)
        object.__setattr__(self, "_values", merged)
        object.__setattr__(self, "source", source)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no setting named {name}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("settings are read-only; use replace()")

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed (for programmatic callers; tests use a settings file)."""
        return Settings({**self._values, **changes}, self.source)

    def graphite_namespace(self, app: str = "analyzer") -> str:
        """``skyline.<app>[.<SERVER_METRICS_NAME>]``, the prefix of every metric the app sends."""
        suffix = f".{self.SERVER_METRICS_NAME}" if self.SERVER_METRICS_NAME else ""
        return f"skyline.{app}{suffix}"


def settings_path() -> Path | None:
    """The settings file in force: ``$SKYLINE_SETTINGS``, else the bundled ``settings.py`` if present."""
    named = os.environ.get(SETTINGS_ENV)
    if named:
        return Path(named)
    return BUNDLED_SETTINGS if BUNDLED_SETTINGS.is_file() else None


def read_settings_file(path: Path) -> dict[str, Any]:
    """Execute a settings file and return its UPPER_CASE names."""
    if not path.is_file():
        raise SettingsError([f"{SETTINGS_ENV}: settings file {path} does not exist"])
    try:
        namespace = runpy.run_path(str(path))
    except Exception as exc:
        raise SettingsError([f"settings file {path} failed to load: {type(exc).__name__}: {exc}"]) from exc
    return {name: value for name, value in namespace.items() if name.isupper()}


def load(path: Path | None = None) -> Settings:
    """Read and validate the settings; raise :class:`SettingsError` naming every bad setting."""
    path = path if path is not None else settings_path()
    values = read_settings_file(path) if path is not None else {}
    settings = Settings(values, str(path) if path is not None else "<defaults>")
    problems = validate(settings)
    if problems:
        raise SettingsError(problems)
    return settings


# Accepted types where the default's own type is too narrow.
_ALLOWED_TYPES: dict[str, tuple[type, ...]] = {
    "REDIS_PASSWORD": (str, type(None)),
    "REDIS_HOST": (str, type(None)),
    "GRAPHITE_PORT": (str, int),
    "LUMINOL_CROSS_CORRELATION_THRESHOLD": (int, float),
    "GRAPHITE_CONNECT_TIMEOUT": (int, float),
    "GRAPHITE_READ_TIMEOUT": (int, float),
}

# Settings that are durations, counts or sizes and must be positive integers.
_POSITIVE_INTS = (
    "FULL_DURATION",
    "MINI_DURATION",
    "STALE_PERIOD",
    "ANALYZER_PROCESSES",
    "ANALYZER_OPTIMUM_RUN_DURATION",
    "MAX_ANALYZER_PROCESS_RUNTIME",
    "MIN_TOLERABLE_LENGTH",
    "MAX_TOLERABLE_BOREDOM",
    "BOREDOM_SET_SIZE",
    "CONSENSUS",
    "CARBON_PORT",
    "WORKER_PROCESSES",
    "CHUNK_SIZE",
    "MAX_QUEUE_SIZE",
    "ROOMBA_PROCESSES",
    "ROOMBA_TIMEOUT",
    "MAX_RESOLUTION",
    "IONOSPHERE_KEEP_TRAINING_TIMESERIES_FOR",
    "ALERT_CONCURRENCY",
    "SMTP_PORT",
    "PICKLE_PORT",
    "UDP_PORT",
    "PLAINTEXT_PORT",
    "MAX_PICKLE_FRAME_BYTES",
)

# Timeouts and intervals in seconds: positive, fractions allowed.
_POSITIVE_NUMBERS = ("GRAPHITE_CONNECT_TIMEOUT", "GRAPHITE_READ_TIMEOUT", "ALERT_TIMEOUT", "CHUNK_FLUSH_INTERVAL")


def _type_name(types: tuple[type, ...]) -> str:
    return " or ".join("None" if t is type(None) else t.__name__ for t in types)


def _allowed_types(name: str, default: Any) -> tuple[type, ...]:
    if name in _ALLOWED_TYPES:
        return _ALLOWED_TYPES[name]
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, int):
        return (int,)
    if isinstance(default, float):
        return (int, float)
    if isinstance(default, (list, tuple)):
        return (list, tuple)
    return (type(default),)


def _type_problems(settings: Settings) -> list[str]:
    problems = []
    for name, default in DEFAULTS.items():
        value = settings[name]
        allowed = _allowed_types(name, default)
        # bool is an int subclass; True is not a valid duration.
        wrong_bool = isinstance(value, bool) and bool not in allowed
        if wrong_bool or not isinstance(value, allowed):
            problems.append(f"{name} must be {_type_name(allowed)}, got {type(value).__name__} {value!r}")
    return problems


def _alert_problems(settings: Settings) -> list[str]:
    problems = []
    for index, alert in enumerate(settings.ALERTS):
        shape_ok = (
            isinstance(alert, (list, tuple))
            and len(alert) in (3, 4)
            and isinstance(alert[0], str)
            and isinstance(alert[1], str)
            and all(isinstance(x, int) and not isinstance(x, bool) for x in alert[2:])
        )
        if not shape_ok:
            problems.append(
                f"ALERTS[{index}] must be (pattern, alerter, EXPIRATION_TIME[, SECOND_ORDER_RESOLUTION_HOURS])"
                f" with int times, got {alert!r}"
            )
            continue
    if settings.SLACK_ENABLED:
        alerters = [a[1] for a in settings.ALERTS if isinstance(a, (list, tuple)) and len(a) > 1]
        first_smtp = alerters.index("smtp") if "smtp" in alerters else None
        for index, alerter in enumerate(alerters):
            if alerter == "slack" and (first_smtp is None or index < first_smtp):
                problems.append(f"ALERTS[{index}]: slack tuples must come after the smtp tuples")
            if alerter == "smtp" and "slack" in alerters[:index]:
                problems.append(f"ALERTS[{index}]: an smtp tuple must not follow a slack tuple")
    return problems


def validate(settings: Settings) -> list[str]:
    """Every problem with ``settings``, one message each naming the setting; empty when valid."""
    from skyline_analyzer.detection.algorithms import DETECTORS
    from skyline_analyzer.detection.engine import ENGINES

    problems = _type_problems(settings)
    bad_types = {p.split(" ", 1)[0] for p in problems}
    for name in (*_POSITIVE_INTS, *_POSITIVE_NUMBERS):
        if name not in bad_types and settings[name] <= 0:
            problems.append(f"{name} must be positive, got {settings[name]!r}")
    if "ALGORITHMS" not in bad_types:
        algorithms = list(settings.ALGORITHMS)
        for name in algorithms:
            if name not in DETECTORS:
                problems.append(
                    f"ALGORITHMS: {name!r} is not a Skyline algorithm (known: {', '.join(sorted(DETECTORS))})"
                )
        if not algorithms:
            problems.append("ALGORITHMS must name at least one algorithm")
        if len(set(algorithms)) != len(algorithms):
            problems.append("ALGORITHMS names an algorithm more than once")
        if "CONSENSUS" not in bad_types and len(algorithms) < settings.CONSENSUS:
            problems.append(
                f"CONSENSUS = {settings.CONSENSUS} is more than the {len(algorithms)} ALGORITHMS:"
                " nothing could ever be anomalous"
            )
    threshold = settings.LUMINOL_CROSS_CORRELATION_THRESHOLD
    if "LUMINOL_CROSS_CORRELATION_THRESHOLD" not in bad_types and (threshold <= 0.0 or threshold >= 1.0):
        problems.append(f"LUMINOL_CROSS_CORRELATION_THRESHOLD must be between 0 and 1, got {threshold!r}")
    if "ANALYZER_ENGINE" not in bad_types and settings.ANALYZER_ENGINE not in ENGINES:
        problems.append(f"ANALYZER_ENGINE must be one of {', '.join(map(repr, ENGINES))},"
                        f" got {settings.ANALYZER_ENGINE!r}")
    if "ALERTS" not in bad_types:
        problems.extend(_alert_problems(settings))
    return problems
