"""``skyline-analyzer settings init PATH``: write the commented settings template (docs/install.md).

The template is the package's ``data/settings.py``: every setting with its default and a comment (in the
repository, a link to the root ``settings.py``; a wheel holds the file itself). The copy is the operator's
to edit; the package reads settings only from the file ``--settings`` or ``SKYLINE_SETTINGS`` names, never
from its own directory.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources
from pathlib import Path

from skyline_analyzer.checks import escape

#: The written file's mode: it may come to hold passwords (REDIS_PASSWORD, SMTP_PASSWORD), so no world read.
MODE = 0o640


def template() -> bytes:
    """The settings template shipped in the package."""
    return resources.files("skyline_analyzer").joinpath("data", "settings.py").read_bytes()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "settings",
        help="write the commented settings template",
        description="Settings files. 'init PATH' writes the template: every setting with its default and "
                    "what it does. Name the edited file with --settings PATH or SKYLINE_SETTINGS.",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    init = actions.add_parser("init", help="write the settings template to PATH",
                              description="Write the commented settings template to PATH (mode 0640).")
    init.add_argument("path", type=Path, metavar="PATH", help="the file to write, e.g. /etc/skyline/settings.py")
    init.add_argument("--force", action="store_true", help="replace PATH if it exists")
    init.set_defaults(handler=run, needs_settings=False)


def run(args: argparse.Namespace) -> int:
    path: Path = args.path
    where = escape(str(path), 400)
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | (os.O_TRUNC if args.force else os.O_EXCL)
    try:
        fd = os.open(path, flags, MODE)
    except FileExistsError:
        print(f"error :: {where} exists: edit it, or pass --force to replace it", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error :: cannot write {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    with os.fdopen(fd, "wb") as handle:
        handle.write(template())
    where = escape(os.path.abspath(path), 400)
    print(f"wrote {where}: edit it (REDIS_SOCKET_PATH, GRAPHITE_HOST, ALERTS, ...), then run the daemons "
          f"with --settings {where} or SKYLINE_SETTINGS={where}", file=sys.stderr)
    return 0
