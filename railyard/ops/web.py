"""``railyard web``: a dashboard of series, backups, verifications, schedule, queues and failed jobs.

Every page reads through the functions behind ``railyard status``, ``backups list``,
``schedule list`` and ``failed list``; every figure goes through the redaction layer
before it is rendered. Actions are POST forms carrying a CSRF token and call what the
CLI calls (``failed retry``, ``schedule run``, the ``jobs.verify.verify_backup`` job).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from jobs.backup.catalog import read_catalog
from jobs.backup.verify import read_verifications
from railyard.core import failed_jobs, progress
from railyard.core.alert_config import AlertConfig
from railyard.core.alerts import process_secrets, scrub
from railyard.core.client import enqueue
from railyard.core.durations import format_duration
from railyard.core.errors import RailyardError
from railyard.core.settings import Settings
from railyard.core.storage import open_backup_store
from railyard.ops import metrics
from railyard.ops.status import collect, scheduled_entries
from railyard.ops.status_config import StatusConfig
from railyard.ops.svg_chart import line_chart
from railyard.ops.web_auth import CsrfTokens, basic_auth_ok
from scheduler import manual

TEMPLATES = Path(__file__).parent / "templates"
VERIFY_JOB = "jobs.verify.verify_backup"


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(timedelta(seconds=seconds))


class BasicAuth:
    """Every request needs the password (any user name) when one is set."""

    def __init__(self, app: ASGIApp, password: str | None):
        self.app, self.password = app, password

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.password:
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            if not basic_auth_ok(header, self.password):
                deny = PlainTextResponse(
                    "authentication required", 401, headers={"WWW-Authenticate": 'Basic realm="railyard"'}
                )
                await deny(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(settings: Settings, password: str | None) -> ASGIApp:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    env.filters["age"] = _age
    env.filters["bytes"] = lambda n: "-" if n is None else progress.human_bytes(n)
    csrf = CsrfTokens()
    registry = metrics.registry_for(settings)

    def page(request: Request, template: str, charts: dict[str, str] | None = None, **data: Any) -> HTMLResponse:
        secrets = process_secrets()
        safe = scrub(data, secrets)
        message = scrub(request.query_params.get("message", ""), secrets)
        # Charts are markup built by line_chart (which escapes its text), redacted like the rest.
        svg = {k: Markup(scrub(v, secrets)) for k, v in (charts or {}).items()}  # noqa: S704
        html = env.get_template(template).render(csrf=csrf.token, message=message, charts=svg, **safe)
        return HTMLResponse(html)

    def overview(request: Request) -> Response:
        status = collect(settings, AlertConfig.from_env(), datetime.now(UTC), StatusConfig.from_env())
        return page(request, "overview.html", status=status.as_dict())

    def series(request: Request) -> Response:
        name = request.path_params["name"]
        st, location = open_backup_store(settings)
        catalog = read_catalog(st, location, environment=settings.environment, series=name)
        verified = read_verifications(st, location)
        backups = [m for m in catalog.backups if m.series_name == name]
        size = line_chart([(m.finished, float(m.size)) for m in backups], f"size of {name}", progress.human_bytes)
        duration = line_chart([(m.finished, m.duration_s) for m in backups], f"duration of {name}", _seconds)
        rows = [
            {"id": m.id, "finished_at": m.finished_at, "size": m.size, "duration_s": m.duration_s}
            | {"verification": verified.get(m.key)}
            for m in backups
        ]
        return page(request, "series.html", {"size": size, "duration": duration}, name=name, backups=rows)

    def verifications(request: Request) -> Response:
        st, location = open_backup_store(settings)
        catalog = read_catalog(st, location, environment=settings.environment)
        verified = read_verifications(st, location)
        rows = [{"series": m.series_name, "id": m.id} | verified[m.key] for m in catalog.backups if m.key in verified]
        rows.sort(key=lambda r: str(r.get("verified_at", "")), reverse=True)
        return page(request, "verifications.html", rows=rows)

    def schedule(request: Request) -> Response:
        connection = redis.Redis.from_url(settings.redis_url)
        try:
            entries = scheduled_entries(connection, settings, datetime.now(UTC))
        finally:
            connection.close()
        return page(request, "schedule.html", entries=entries)

    def queues(request: Request) -> Response:
        status = collect(settings, AlertConfig.from_env(), datetime.now(UTC), StatusConfig.from_env())
        connection = redis.Redis.from_url(settings.redis_url)
        try:
            found = failed_jobs.failed_jobs(connection, serializer=settings.serializer)
        finally:
            connection.close()
        failed = [failed_jobs.describe(j).as_dict() for j in found]
        return page(request, "queues.html", status=status.as_dict(), failed=failed)

    def metrics_page(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def action(run: Callable[[Request], str], back: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            form = await request.form()
            if not csrf.valid(str(form.get("csrf", ""))):
                return PlainTextResponse("invalid or missing CSRF token: reload the page and try again", 403)
            try:
                message = await run_in_threadpool(run, request)
            except (RailyardError, redis.RedisError) as exc:
                message = f"error: {' '.join(str(exc).split())}"
            message = scrub(message, process_secrets())
            return RedirectResponse(f"{back}?message={quote(message)}", status_code=303)

        return endpoint

    def retry(request: Request) -> str:
        connection = redis.Redis.from_url(settings.redis_url)
        try:
            job = failed_jobs.retry(connection, request.path_params["job_id"], serializer=settings.serializer)
        finally:
            connection.close()
        return f"requeued {job.id} on {job.origin}"

    def run_now(request: Request) -> str:
        result = manual.run_now(settings, request.path_params["entry_id"], datetime.now(UTC))
        if result.enqueued:
            return f"enqueued {result.job_id} ({result.entry.func})"
        return f"already enqueued for this period: {result.job_id} ({result.outcome}); nothing new enqueued"

    def verify_now(request: Request) -> str:
        backup_id = request.path_params["backup_id"]
        connection = redis.Redis.from_url(settings.redis_url)
        try:
            job = enqueue(VERIFY_JOB, connection, serializer=settings.serializer, backup_id=backup_id)
        finally:
            connection.close()
        return f"enqueued verification of {backup_id} as {job.id}"

    routes = [
        Route("/", overview),
        Route("/series/{name}", series),
        Route("/verifications", verifications),
        Route("/schedule", schedule),
        Route("/queues", queues),
        Route("/metrics", metrics_page),
        Route("/failed/{job_id}/retry", action(retry, "/queues"), methods=["POST"]),
        Route("/schedule/{entry_id}/run", action(run_now, "/schedule"), methods=["POST"]),
        Route("/backups/{backup_id}/verify", action(verify_now, "/verifications"), methods=["POST"]),
    ]
    return BasicAuth(Starlette(routes=routes), password)


def _seconds(value: float) -> str:
    return f"{value:.1f} s"
