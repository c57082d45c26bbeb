"""The ``skyline-analyzer`` command line: one module per sub-command, each with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys

from skyline_analyzer import __version__
from skyline_analyzer.exceptions import SettingsError

#: Sub-command modules under ``skyline_analyzer.cli``, in the order ``--help`` lists them.
COMMANDS = ("check", "run", "horizon", "webapp", "demo", "seed", "alert_test")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skyline-analyzer", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"skyline_analyzer.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except SettingsError as exc:
        print(f"error :: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
