"""``railyard web``: the dashboard, served with uvicorn."""

from __future__ import annotations

import os

import click

from railyard.cli.context import CliContext
from railyard.ops.web_auth import PASSWORD_VARIABLE, require_password_off_loopback

DEFAULT_PORT = 8080


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=lambda: int(os.environ.get("PORT") or DEFAULT_PORT),
    show_default="PORT, else 8080",
    help="Port to listen on.",
)
@click.pass_obj
def web(obj: CliContext, host: str, port: int) -> None:
    """Serve the dashboard: series, backups, verifications, schedule, queues, failed jobs and /metrics.

    Off a loopback address it needs RAILYARD_WEB_PASSWORD (HTTP Basic, any user name) and exits 2
    without it. Actions (retry, run now, verify now) are POST forms with a CSRF token.
    """
    password = os.environ.get(PASSWORD_VARIABLE) or None
    require_password_off_loopback(host, password)
    settings = obj.settings

    import uvicorn

    from railyard.ops.web import create_app

    click.echo(f"serving the dashboard on http://{host}:{port}/", err=True)
    uvicorn.run(create_app(settings, password), host=host, port=port, log_level="warning", access_log=False)
