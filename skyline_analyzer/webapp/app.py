"""The web app: routes, the JSON API, error handling, static files (docs/webapp.md).

``create_app`` builds a Starlette application over a Redis client it only reads from. Handlers are plain
functions, run by Starlette in its thread pool, since the Redis client and the detectors block.
"""

from __future__ import annotations

import logging
from pathlib import Path

import redis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from skyline_analyzer import connections
from skyline_analyzer.config import Settings
from skyline_analyzer.excerpt import escape
from skyline_analyzer.webapp import pages, params, views
from skyline_analyzer.webapp.guard import Guard
from skyline_analyzer.webapp.store import Store

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"


def api_anomalies(request: Request) -> Response:
    return JSONResponse(views.anomalies(request.app.state.store))


def api_metrics(request: Request) -> Response:
    prefix = params.text(request.query_params, "prefix", required=False) or ""
    limit = request.app.state.settings.WEBAPP_MAX_SEARCH_RESULTS
    asked = params.integer(request.query_params, "limit", 1, limit)
    return JSONResponse(views.metrics(request.app.state.store, prefix, asked or limit))


def api_series(request: Request) -> Response:
    metric = params.text(request.query_params, "metric")
    points = params.integer(request.query_params, "points", 2, params.MAX_POINTS)
    return JSONResponse(views.series(request.app.state.store, metric, points))


def api_explain(request: Request) -> Response:
    metric = params.text(request.query_params, "metric")
    now = params.number(request.query_params, "now")
    return JSONResponse(views.explanation(request.app.state.store, request.app.state.settings, metric, now))


def home(request: Request) -> Response:
    return RedirectResponse("/now", status_code=302)


async def http_error(request: Request, exc: HTTPException) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": exc.detail, "status": exc.status_code}, status_code=exc.status_code,
                            headers=exc.headers)
    return pages.error_page(request, exc)


async def redis_error(request: Request, exc: Exception) -> Response:
    log.error("error :: Redis: %s", escape(str(exc)))
    return await http_error(request, HTTPException(503, "Redis is not answering; try again shortly"))


def create_app(settings: Settings, conn: redis.Redis | None = None) -> Starlette:
    """The application over ``conn`` (a client of the settings' Redis by default)."""
    app = Starlette(
        routes=[
            Route("/", home),
            Route("/now", pages.now_page),
            Route("/metric", pages.metric_page),
            Route("/search", pages.search_page),
            Route("/sparkline.svg", pages.sparkline_image),
            Route("/api/anomalies", api_anomalies),
            Route("/api/metrics", api_metrics),
            Route("/api/series", api_series),
            Route("/api/explain", api_explain),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(Guard, settings=settings)],
        exception_handlers={HTTPException: http_error, redis.RedisError: redis_error},
    )
    app.state.settings = settings
    app.state.store = Store(conn if conn is not None else connections.connect(settings), settings)
    return app
