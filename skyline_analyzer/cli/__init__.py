"""The ``skyline-analyzer`` command line: one module per sub-command, each with ``register(subparsers)``.

Every command reads its settings from the file ``--settings PATH`` names (before or after the sub-command),
else from ``$SKYLINE_SETTINGS``. The daemons (run, horizon, webapp) refuse to start without one; the other
commands say that they use the built-in defaults (docs/install.md#settings).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from skyline_analyzer import __version__, config
from skyline_analyzer.exceptions import SettingsError

#: Sub-command modules under ``skyline_analyzer.cli``, in the order ``--help`` lists them.
COMMANDS = ("check", "run", "horizon", "webapp", "demo", "seed", "alert_test", "settings", "tune")
#: The daemons: they never run on the built-in defaults, whose paths and Redis socket are placeholders.
DAEMONS = ("run", "horizon", "webapp")

SETTINGS_HELP = (f"the settings file (overrides ${config.SETTINGS_ENV}; write one with "
                 "'skyline-analyzer settings init PATH')")
EPILOG = (f"Settings come from --settings PATH, else ${config.SETTINGS_ENV}; without either, run, horizon and "
          "webapp refuse to start and the other commands use the built-in defaults.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skyline-analyzer", description=__doc__.split("\n\n")[0], epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--settings", type=Path, default=None, metavar="PATH", help=SETTINGS_HELP)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"skyline_analyzer.cli.{name}").register(subparsers)
    for command in subparsers.choices.values():
        # SUPPRESS: given only before the sub-command, the value parsed there stands.
        command.add_argument("--settings", type=Path, default=argparse.SUPPRESS, metavar="PATH", help=SETTINGS_HELP)
        command.epilog = command.epilog or EPILOG
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = os.environ.get(config.SETTINGS_ENV)
    if args.settings is not None:
        # Through the environment, so that every child process and bin/ helper reads the same file.
        os.environ[config.SETTINGS_ENV] = str(args.settings)
    try:
        if getattr(args, "needs_settings", True) and config.settings_path() is None:
            if args.command in DAEMONS:
                print(f"error :: no settings file: pass --settings PATH or set {config.SETTINGS_ENV} (write one "
                      "with 'skyline-analyzer settings init PATH', docs/install.md)", file=sys.stderr)
                return 1
            print(f"note :: no settings file (--settings PATH or {config.SETTINGS_ENV}): using the built-in "
                  "defaults (docs/settings.md)", file=sys.stderr)
        return int(args.handler(args))
    except SettingsError as exc:
        print(f"error :: {exc}", file=sys.stderr)
        return 1
    finally:
        _restore(previous)


def _restore(previous: str | None) -> None:
    """Put ``$SKYLINE_SETTINGS`` back as it was (main() may be called in-process)."""
    if previous is None:
        os.environ.pop(config.SETTINGS_ENV, None)
    else:
        os.environ[config.SETTINGS_ENV] = previous


if __name__ == "__main__":
    sys.exit(main())
