"""``skyline-analyzer webapp``: the read-only web app on ``WEBAPP_IP:WEBAPP_PORT`` (docs/webapp.md).

The web framework and the server are imported here, inside the command, so that the other commands do
not load them. Logs go to ``LOG_PATH/webapp.log`` (the server's access lines included); systemd is told
READY once the socket listens. SIGTERM or Ctrl-C stops it after the requests in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import TYPE_CHECKING

from skyline_analyzer import config, logs
from skyline_analyzer.cli import service
from skyline_analyzer.systemd import Notifier

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)

APP = "webapp"
#: Seconds an idle keep-alive connection is held open.
KEEP_ALIVE = 5
#: Connections served at once; more are answered 503 by the server.
MAX_CONNECTIONS = 200


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "webapp",
        help="serve the read-only web app (Now, Metric, JSON API)",
        description="Serve the anomalies of the last run, each metric's series and why it was flagged, "
                    "on WEBAPP_IP:WEBAPP_PORT, until SIGTERM or Ctrl-C.",
    )
    parser.add_argument("--port", type=int, default=None, help="listen on this port instead of WEBAPP_PORT")
    service.add_log_to(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = config.load()
    if not service.pid_path_exists(settings):
        return 1
    handler = service.start_logging(settings, APP, level=logging.INFO, target=args.log_to)
    if handler is None:
        return 1
    server_log = logging.getLogger("uvicorn")
    server_log.addHandler(handler)
    server_log.setLevel(logging.INFO)
    server_log.propagate = False
    if not service.redis_credentials_accepted(settings):
        return 1

    import uvicorn

    from skyline_analyzer.webapp.app import create_app

    port = settings.WEBAPP_PORT if args.port is None else args.port
    server = uvicorn.Server(uvicorn.Config(
        create_app(settings), host=settings.WEBAPP_IP, port=port, log_config=None, access_log=True,
        # The client address must be the socket's: a forwarded header would let anyone pass WEBAPP_ALLOWED_IPS.
        proxy_headers=False, server_header=False, timeout_keep_alive=KEEP_ALIVE,
        limit_concurrency=MAX_CONNECTIONS, lifespan="off",
    ))
    # The server handles SIGTERM and SIGINT itself, then raises the signal again against the handlers it
    # found: these make that a quiet, successful exit instead of death by signal.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    notifier = Notifier()
    started = asyncio.run(_serve(server, notifier))
    notifier.stopping()
    if not started:
        print(f"error :: could not listen on {settings.WEBAPP_IP}:{port} (see {logs.log_file(settings.LOG_PATH, APP)})",
              file=sys.stderr)
        return 1
    log.info("%s stopped", APP)
    return 0


async def _serve(server: uvicorn.Server, notifier: Notifier) -> bool:
    """Serve until stopped; tell systemd READY once listening. Returns whether it ever listened."""
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.05)
    if server.started:
        host, port = server.config.host, server.config.port
        log.info("listening on http://%s:%d", host, port)
        print(f"listening on http://{host}:{port}", file=sys.stderr, flush=True)
        notifier.ready()
    await task
    return bool(server.started)
