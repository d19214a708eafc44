"""``railyard audio``: process an uploaded audio file now, or queue it for the worker."""

from __future__ import annotations

import json

import click
import psycopg
from redis import Redis

from jobs.audio.config import AudioConfig
from railyard.cli.context import CliContext
from railyard.core.errors import NotFoundError, PermanentError


@click.group()
def audio() -> None:
    """Loudness-normalised, Yoto-ready audio from uploaded files (queue: audio)."""


@audio.command("process")
@click.argument("audio_file_id")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_obj
def process(obj: CliContext, audio_file_id: str, as_json: bool) -> None:
    """Process one audio file now, in this process.

    Exits 1 when the file failed or was rejected; the reason is on stderr and in the row.
    """
    from jobs.audio.process import process_file  # PyAV loads only for this command

    outcome = process_file(obj.settings, AudioConfig.from_env(), audio_file_id)
    if as_json:
        click.echo(json.dumps(outcome.as_dict(), indent=2, default=str))
    else:
        click.echo(f"audio file {outcome.audio_file_id}: {outcome.outcome} (status {outcome.status})")
        result = outcome.result
        if outcome.outcome == "processed":
            click.echo(
                f"output    {result['output_key']} ({result['format']}, {result['sample_rate']} Hz, "
                f"{result['channels']} ch, {result['duration_ms'] / 1000:.3f} s)"
            )
            click.echo(
                f"loudness  {result['loudness_before_lufs']:.1f} -> {result['loudness_after_lufs']:.1f} LUFS "
                f"(gain {result['gain_db']:+.1f} dB), true peak {result['true_peak_after_dbtp']:.1f} dBTP"
            )
        elif outcome.detail:
            click.echo(f"reason    {outcome.detail}")
    if outcome.outcome in ("failed", "rejected"):
        raise PermanentError(f"audio file {outcome.audio_file_id} {outcome.outcome}: {outcome.detail}")


@audio.command("enqueue")
@click.argument("audio_file_id")
@click.pass_obj
def enqueue(obj: CliContext, audio_file_id: str) -> None:
    """Queue one audio file for the worker (job jobs.audio.process_audio)."""
    from jobs.audio.files import AudioFiles
    from railyard.core.client import enqueue_audio

    settings = obj.settings
    audio_settings = AudioConfig.from_env()
    with psycopg.connect(settings.database_url, autocommit=True, connect_timeout=10) as conn:
        if AudioFiles(conn, audio_settings.table_parts).get(audio_file_id) is None:
            raise NotFoundError(
                f"no audio file with id {audio_file_id!r} in table {audio_settings.table}; nothing was queued"
            )
    connection = Redis.from_url(settings.redis_url)
    try:
        job = enqueue_audio(audio_file_id, connection, serializer=settings.serializer)
    finally:
        connection.close()
    click.echo(f"queued audio file {audio_file_id} as job {job.id} on queue {job.origin}")
