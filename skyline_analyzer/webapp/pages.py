"""The HTML pages: Now (the last run's anomalies and the Analyzer's health), Metric, Search, errors.

Templates autoescape everything; data for the page's scripts travels as JSON in a non-executed
``<script type="application/json">`` element with ``<``, ``>`` and ``&`` escaped, so no value can close
the element. Scripts are static files (the Content-Security-Policy allows no inline script).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

import jinja2
from markupsafe import Markup
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from skyline_analyzer.webapp import params, sparkline, views
from skyline_analyzer.webapp.store import Store

ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("skyline_analyzer.webapp", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def utc(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def script_json(value: Any) -> Markup:
    """JSON that is safe inside a ``<script type="application/json">`` element."""
    text = json.dumps(value, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def metric_url(metric: str) -> str:
    return "/metric?" + urllib.parse.urlencode({"name": metric})


def sparkline_url(metric: str, timestamp: float) -> str:
    return "/sparkline.svg?" + urllib.parse.urlencode({"metric": metric, "ts": repr(timestamp)})


ENVIRONMENT.filters.update(utc=utc, script_json=script_json)
ENVIRONMENT.globals.update(metric_url=metric_url, sparkline_url=sparkline_url)


def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(ENVIRONMENT.get_template(name).render(**context), status_code=status)


def now_page(request: Request) -> Response:
    store: Store = request.app.state.store
    limit = request.app.state.settings.WEBAPP_MAX_ANOMALIES_SHOWN
    return render("now.html", page="now", data=views.anomalies(store, limit))


def metric_page(request: Request) -> Response:
    store: Store = request.app.state.store
    name = params.text(request.query_params, "name", required=False)
    if name is None:
        return render("search.html", page="metric", prefix="", found=None)
    now = params.number(request.query_params, "now")
    explained = views.explanation(store, request.app.state.settings, name, now)
    chart = views.series(store, name, None)
    return render("metric.html", page="metric", metric=name, explained=explained, chart=chart)


def search_page(request: Request) -> Response:
    store: Store = request.app.state.store
    prefix = params.text(request.query_params, "prefix", required=False) or ""
    found = views.metrics(store, prefix, request.app.state.settings.WEBAPP_MAX_SEARCH_RESULTS)
    return render("search.html", page="metric", prefix=prefix, found=found)


def sparkline_image(request: Request) -> Response:
    store: Store = request.app.state.store
    metric = params.text(request.query_params, "metric")
    mark = params.number(request.query_params, "ts")
    image = sparkline.svg(views.load_series(store, metric), mark)
    return Response(image, media_type="image/svg+xml", headers={"cache-control": "max-age=30"})


def error_page(request: Request, exc: HTTPException) -> Response:
    return render("error.html", status=exc.status_code, page="", status_code=exc.status_code, detail=exc.detail)
