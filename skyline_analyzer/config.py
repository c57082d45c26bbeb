"""Loading and validating the operator's settings file.

The file is plain Python (``settings.py``): every UPPER_CASE name it defines is a setting. It is named by
``$SKYLINE_SETTINGS`` (the command line's ``--settings`` sets it); without it every setting takes its
default. Nothing is ever read from beside the package: an installed package's directory is no place for an
operator's file (docs/install.md). A setting the file does
not define takes its default from :mod:`skyline_analyzer.defaults`; every value is checked against
:mod:`skyline_analyzer.schema`. Any problem, including a file that does not run, is a
:class:`SettingsError` whose messages name the file, the line and the setting (docs/settings.md).

Run as ``python -m skyline_analyzer.config NAME...``, it validates the settings and prints ``NAME=value``
lines for a shell (``bin/analyzer.d``).
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import os
import re
import shlex
import sys
import tokenize
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from skyline_analyzer import schema
from skyline_analyzer.checks import describe, escape, nearest
from skyline_analyzer.defaults import DEFAULTS
from skyline_analyzer.exceptions import SettingsError

#: The environment variable naming the settings file to read.
SETTINGS_ENV = "SKYLINE_SETTINGS"
#: Unknown names reported at most; the rest are counted.
UNKNOWN_REPORTED = 20
#: Largest settings file read, in bytes: the operator's file is a few kB; this bounds a wrong path's cost.
MAX_SETTINGS_BYTES = 1 << 20

_ASSIGNED_AT_LINE_START = re.compile(rb"\s*([A-Z][A-Z0-9_]*)\s*(?::[^=]*)?[-+*/%&|^@]?=")


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

    def __reduce__(self) -> tuple[type[Settings], tuple[dict[str, Any], str]]:
        # Pickled by value (for Dask workers): the default protocol would look up attributes through
        # __getattr__ before _values exists.
        return Settings, (self._values, self.source)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed (for programmatic callers; tests use a settings file)."""
        return Settings({**self._values, **changes}, self.source)

    def graphite_namespace(self, app: str = "analyzer") -> str:
        """``skyline.<app>[.<SERVER_METRICS_NAME>]``, the prefix of every metric the app sends."""
        suffix = f".{self.SERVER_METRICS_NAME}" if self.SERVER_METRICS_NAME else ""
        return f"skyline.{app}{suffix}"


@dataclass(frozen=True)
class SettingsFile:
    """What a settings file defines: its settings, the line each was last set on, and imported names."""

    path: Path
    values: dict[str, Any]
    lines: dict[str, int]
    imported: frozenset[str]


def settings_path() -> Path | None:
    """The settings file in force: ``$SKYLINE_SETTINGS``; None (the defaults) when it is unset or empty."""
    named = os.environ.get(SETTINGS_ENV)
    return Path(named) if named else None


def read_settings_file(path: Path) -> SettingsFile:
    """Execute a settings file; :class:`SettingsError` naming the file, line and setting if it cannot."""
    where = escape(str(path), 400)
    if not path.is_file():
        reason = "does not exist" if not path.exists() else "is not a regular file"
        raise SettingsError([f"{SETTINGS_ENV}: settings file {where} {reason}"])
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SETTINGS_BYTES + 1)
    except OSError as exc:
        raise SettingsError([f"{where}: cannot be read: {exc.strerror}"]) from None
    if len(data) > MAX_SETTINGS_BYTES:
        raise SettingsError([f"{where}: larger than {MAX_SETTINGS_BYTES} bytes: not a settings file"])
    source = _decode(data, where)
    try:
        tree = ast.parse(source, filename=str(path))
        code = compile(tree, str(path), "exec")
    except SyntaxError as exc:
        named = _setting_on(data, exc.lineno)
        raise SettingsError([f"{where}:{exc.lineno}: {named}{_describe_exception(exc)}"]) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise SettingsError([f"{where}: cannot be compiled: {_describe_exception(exc)}"]) from None
    namespace: dict[str, Any] = {"__file__": str(path), "__name__": "__settings__", "__builtins__": builtins}
    try:
        exec(code, namespace)
    except (Exception, SystemExit) as exc:
        line = _failing_line(exc.__traceback__, str(path))
        names = _names_set_on(tree, line)
        prefix = f"{names[0]}: " if names else ""
        if any(schema.is_secret(name) for name in names):
            text = f"{type(exc).__name__} (message not shown: secret)"
        else:
            text = _describe_exception(exc)
        located = f"{where}:{line}" if line else where
        raise SettingsError([f"{located}: {prefix}failed: {text}"]) from None
    values = {
        name: value for name, value in namespace.items()
        if isinstance(name, str) and name.isupper() and not name.startswith("_")
        and not isinstance(value, ModuleType)
    }
    return SettingsFile(path, values, _assignment_lines(tree), _imported_names(tree))


def load(path: Path | None = None) -> Settings:
    """Read and validate the settings; raise :class:`SettingsError` naming every bad setting."""
    path = path if path is not None else settings_path()
    if path is None:
        settings = Settings({})
        problems = validate(settings)
        if problems:
            raise SettingsError(problems)
        return settings
    file = read_settings_file(path)
    # Unknown names are reported below; imported ones (any case) are the file's own business.
    values = _anchor_dump({name: value for name, value in file.values.items() if name in DEFAULTS}, path)
    settings = Settings(values, str(path))
    located = [*_unknown_names(file), *((file.lines.get(name), text) for name, text in schema.check(settings))]
    if located:
        where = escape(str(path), 400)
        located.sort(key=lambda found: found[0] if found[0] is not None else sys.maxsize)
        raise SettingsError([f"{where}:{line}: {text}" if line else f"{where}: {text}" for line, text in located])
    return settings


def _anchor_dump(values: dict[str, Any], path: Path) -> dict[str, Any]:
    """A relative ``ANOMALY_DUMP`` made absolute at the settings file's directory, as v1.2.8 resolved it
    against its ``skyline/`` directory, where its settings.py lived (the link is not followed)."""
    dump = values.get("ANOMALY_DUMP")
    if isinstance(dump, str) and dump and not dump.startswith("/"):
        values["ANOMALY_DUMP"] = os.path.join(os.path.dirname(os.path.abspath(path)), dump)
    return values


def validate(settings: Mapping[str, Any]) -> list[str]:
    """Every problem with ``settings``, one message each naming the setting; empty when valid."""
    return [text for _, text in schema.check(settings)]


def _unknown_names(file: SettingsFile) -> Iterator[tuple[int | None, str]]:
    unknown = sorted(name for name in file.values if name not in DEFAULTS and name not in file.imported)
    for name in unknown[:UNKNOWN_REPORTED]:
        shown = name if name.isidentifier() and len(name) <= 80 else describe(name)
        hint = nearest(name, DEFAULTS)
        why = f"did you mean {hint}?" if hint else "not a skyline-analyzer setting; helper names must be lowercase"
        yield file.lines.get(name), f"unknown setting {shown} ({why})"
    if len(unknown) > UNKNOWN_REPORTED:
        yield None, f"{len(unknown) - UNKNOWN_REPORTED} more unknown settings not shown"


def _decode(data: bytes, where: str) -> str:
    """The file's text, in its declared encoding (UTF-8 unless a coding line says otherwise)."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as bad:
            line = data.count(b"\n", 0, bad.start) + 1
            raise SettingsError([f"{where}:{line}: {_setting_on(data, line)}not UTF-8 text "
                                 f"(byte 0x{data[bad.start]:02x})"]) from None
        raise SettingsError([f"{where}: {_describe_exception(exc)}"]) from None


def _setting_on(data: bytes, line: int | None) -> str:
    """``'NAME: '`` when line ``line`` of the raw file starts by assigning NAME, else ''."""
    if not line:
        return ""
    lines = data.split(b"\n", line)
    text = lines[line - 1] if len(lines) >= line else b""
    match = _ASSIGNED_AT_LINE_START.match(text[:200])
    return f"{match.group(1).decode()}: " if match else ""


def _describe_exception(exc: BaseException) -> str:
    """``Type: message``, bounded and escaped, built from the arguments (never the object's own ``str``)."""
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {escape(str(exc.msg))}"
    if not exc.args:
        return type(exc).__name__
    first = exc.args[0]
    return f"{type(exc).__name__}: {escape(first) if isinstance(first, str) else describe(first)}"


def _failing_line(trace: TracebackType | None, filename: str) -> int | None:
    """The line of the file's top-level code the exception went through (the statement that failed)."""
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == filename:
            return trace.tb_lineno
        trace = trace.tb_next
    return None


def _targets(node: ast.AST) -> Iterator[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    for target in targets:
        for found in ast.walk(target) if target is not None else ():
            if isinstance(found, ast.Name):
                yield found.id


def _assignment_lines(tree: ast.Module) -> dict[str, int]:
    lines: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for name in _targets(node):
                lines[name] = max(lines.get(name, 0), node.lineno)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                lines[name] = max(lines.get(name, 0), node.lineno)
    return lines


def _names_set_on(tree: ast.Module, line: int | None) -> list[str]:
    """The names assigned by the top-level statement spanning ``line``."""
    for node in tree.body:
        if line is not None and node.lineno <= line <= (node.end_lineno or node.lineno):
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                return list(_targets(node))
            return []
    return []


def _imported_names(tree: ast.Module) -> frozenset[str]:
    """Names bound by import statements: not settings, whatever their case (``import *`` included)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name != "*":
                    names.add(alias.asname or alias.name.split(".")[0])
                elif isinstance(node, ast.ImportFrom) and node.module in sys.modules:
                    module = sys.modules[node.module]
                    names.update(getattr(module, "__all__", [n for n in vars(module) if not n.startswith("_")]))
    return frozenset(names)


def main(argv: list[str] | None = None) -> int:
    """Validate the settings, then print ``NAME=<shell-quoted value>`` for each name asked for.

    Exit status 1 when the settings are invalid (the messages go to stderr), 2 for a name that is not a
    setting or is a secret. Whatever the settings file itself prints goes to stderr, not into the output.
    """
    names = sys.argv[1:] if argv is None else argv
    try:
        with contextlib.redirect_stdout(sys.stderr):
            settings = load()
    except SettingsError as exc:
        print(f"error :: {exc}", file=sys.stderr)
        return 1
    for name in names:
        if name not in settings or schema.is_secret(name):
            print(f"error :: {escape(name)} is not a setting that can be printed", file=sys.stderr)
            return 2
        print(f"{name}={shlex.quote(str(settings[name]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
