"""A migration run: lock, ledger, plan, backup first, then each migration in order.

    take the migration lock (waiting up to MIGRATION_LOCK_WAIT_S)
    -> set lock_timeout / statement_timeout on the migration connection
    -> read the ledger and plan every namespace; any problem stops the run before it starts
    -> back up (production, or asked to) when there is anything to run
    -> Railyard's own migrations, then the application's (or MIGRATE_COMMAND)

``status`` and ``plan`` read the same plan without the lock and change nothing.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from jobs.migrations import ledger
from jobs.migrations.apply import Step, Timeouts, configure_session, invalid_indexes, run_step
from jobs.migrations.command import refuse_secret_in_argv, run_command
from jobs.migrations.config import RETRY_BACKOFF_CAP_S, MigrationConfig
from jobs.migrations.files import Discovery, MigrationFileError, discover
from jobs.migrations.lock import Conn, connect, database_name, ensure_held, migration_lock
from jobs.migrations.plan import (
    APP,
    BUILTIN,
    AcceptSpec,
    AppliedMigration,
    DownPlan,
    Plan,
    backup_decision,
    plan_down,
    plan_up,
    retry_delays,
    with_invalid_indexes,
)
from railyard import __version__
from railyard.core.errors import LockBusyError, PermanentError
from railyard.core.settings import Settings

log = structlog.get_logger()

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
BACKUP_BUSY_POLL_S = 5.0


class PlanError(PermanentError):
    """The files or the ledger are in a state the run must not proceed from."""


@dataclass(frozen=True)
class Source:
    """Where one namespace's migrations come from."""

    namespace: str
    directory: Path
    required: bool  # a missing directory is an error (set explicitly) rather than "no migrations"

    def discover(self) -> Discovery:
        if not self.directory.exists() and not self.required:
            return Discovery(self.directory, ())
        return discover(self.directory)


@dataclass(frozen=True)
class UpOptions:
    target: int | None = None  # apply the application's migrations up to this version
    allow_out_of_order: bool = False
    backup: bool | None = None  # None: back up in production only
    accept: AcceptSpec = field(default_factory=AcceptSpec)


@dataclass(frozen=True)
class DoneStep:
    namespace: str
    version: int
    name: str
    direction: str
    duration_ms: int
    attempts: int

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass
class RunResult:
    database: str
    steps: list[DoneStep] = field(default_factory=list)
    backup_id: str | None = None
    command_ran: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "database": self.database,
            "steps": [s.as_dict() for s in self.steps],
            "backup_id": self.backup_id,
            "migrate_command_ran": self.command_ran,
        }


def sources_for(config: MigrationConfig, *, builtin_dir: Path = BUILTIN_DIR, app: bool = True) -> list[Source]:
    """Railyard's own migrations first; then the application's directory unless MIGRATE_COMMAND owns them."""
    sources = [Source(BUILTIN, builtin_dir, required=False)]
    if app and not config.migrate_command:
        sources.append(Source(APP, config.migrations_dir, required=config.migrations_dir_set))
    return sources


def applied_by(source: str) -> str:
    return f"railyard {__version__} {source} on {socket.gethostname()}"


class Migrator:
    """Runs migrations against one database with the settings and config given."""

    def __init__(
        self,
        settings: Settings,
        config: MigrationConfig,
        *,
        database_url: str | None = None,
        sources: Sequence[Source] | None = None,
        run_by: str = "cli",
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.settings = settings
        self.config = config
        self.database_url = database_url or settings.database_url
        self.sources = list(sources) if sources is not None else sources_for(config)
        self.applied_by = applied_by(run_by)
        self.sleep = sleep
        self.timeouts = Timeouts(
            lock_timeout_s=config.lock_timeout_s,
            statement_timeout_s=config.statement_timeout_s,
            retry_delays=retry_delays(config.lock_retries, config.retry_backoff_s, RETRY_BACKOFF_CAP_S),
        )

    # -- read-only ------------------------------------------------------------------------------

    def plans(self, options: UpOptions | None = None) -> tuple[str, list[Plan]]:
        """(database name, plan per namespace) as of now, without the lock; changes nothing."""
        discoveries = self._discover()
        with connect(self.database_url, "railyard-migrate-status") as conn:
            plans = self._plan(discoveries, ledger.read(conn), options or UpOptions())
            return database_name(conn), with_invalid_indexes(plans, invalid_indexes(conn))

    def backup_reason(self, requested: bool | None) -> tuple[bool, str]:
        return backup_decision(self.settings.environment, requested)

    # -- changes --------------------------------------------------------------------------------

    def up(self, options: UpOptions | None = None) -> RunResult:
        """Apply every pending migration (Railyard's own first), then MIGRATE_COMMAND if set."""
        options = options or UpOptions()
        discoveries = self._discover_valid()
        refuse_secret_in_argv(self.config.migrate_command, self.database_url)
        with migration_lock(self.database_url, self.config.lock_wait_s) as lock_conn, self._session() as conn:
            result = RunResult(database=database_name(conn))
            ledger.ensure_table(conn)
            plans = self._plan(discoveries, ledger.read(conn), options)
            _raise_problems(plans, "no migration was applied")
            for plan in plans:
                for warning in plan.warnings:
                    log.warning("migration_warning", namespace=plan.namespace, detail=warning)
                for drift in plan.accepted:
                    ledger.accept(conn, plan.namespace, drift.file)
                    log.warning(
                        "migration_checksum_accepted",
                        namespace=plan.namespace,
                        migration=drift.file.name,
                        version=drift.file.version,
                        applied_name=drift.applied.name,
                        applied_checksum=drift.applied.checksum,
                        file_checksum=drift.file.checksum,
                    )
            steps = [Step(p.namespace, m, "up") for p in plans for m in p.to_apply]
            command = self.config.migrate_command
            log.info(
                "migration_run_planned",
                database=result.database,
                pending=len(steps),
                migrate_command=bool(command),
            )
            if steps or command:
                result.backup_id = self._backup_first(options.backup)
            for step in steps:
                result.steps.append(self._run(lock_conn, conn, step))
            if command:
                ensure_held(lock_conn)
                run_command(command, self.database_url)
                result.command_ran = True
        log.info("migration_run_finished", database=result.database, applied=len(result.steps))
        return result

    def down(self, steps: int = 1, *, backup: bool | None = None, accept: AcceptSpec | None = None) -> RunResult:
        """Revert the newest ``steps`` of the application's migrations, newest first."""
        if self.config.migrate_command:
            raise PermanentError(
                "migrate down reverts migrations from MIGRATIONS_DIR, but MIGRATE_COMMAND manages this "
                "application's migrations; use that tool's own downgrade command"
            )
        source = next((s for s in self.sources if s.namespace == APP), None)
        if source is None:
            raise PermanentError("no application migrations are configured; set MIGRATIONS_DIR")
        discovery = dict(self._discover_valid())[source]
        accepted = (accept or AcceptSpec()).for_namespace(APP)
        with migration_lock(self.database_url, self.config.lock_wait_s) as lock_conn, self._session() as conn:
            result = RunResult(database=database_name(conn))
            plan: DownPlan = plan_down(APP, discovery, ledger.read(conn), steps=steps, accept=accepted)
            if plan.problems:
                raise PlanError(_problem_text(list(plan.problems), "nothing was reverted"))
            result.backup_id = self._backup_first(backup)
            for applied, migration in plan.to_revert:
                if applied.checksum != migration.checksum or applied.name != migration.name:
                    ledger.accept(conn, APP, migration)
                    log.warning("migration_checksum_accepted", namespace=APP, migration=migration.name)
                result.steps.append(self._run(lock_conn, conn, Step(APP, migration, "down")))
        log.info("migration_run_finished", database=result.database, reverted=len(result.steps))
        return result

    # -- pieces ---------------------------------------------------------------------------------

    def _discover(self) -> list[tuple[Source, Discovery]]:
        try:
            return [(source, source.discover()) for source in self.sources]
        except MigrationFileError as exc:
            raise PlanError(str(exc)) from exc

    def _discover_valid(self) -> list[tuple[Source, Discovery]]:
        """Discover, and stop before connecting if any file is malformed."""
        discoveries = self._discover()
        problems = [p for _, d in discoveries for p in d.problems]
        if problems:
            raise PlanError(_problem_text(problems, "nothing was changed"))
        return discoveries

    def _plan(
        self, discoveries: list[tuple[Source, Discovery]], applied: list[AppliedMigration], options: UpOptions
    ) -> list[Plan]:
        return [
            plan_up(
                source.namespace,
                discovery,
                applied,
                target=options.target if source.namespace == APP else None,
                allow_out_of_order=options.allow_out_of_order,
                accept=options.accept.for_namespace(source.namespace),
            )
            for source, discovery in discoveries
        ]

    def _session(self) -> Conn:
        """The migration connection: timeouts set only now, after the migration lock is held."""
        conn = connect(self.database_url, "railyard-migrate")
        try:
            configure_session(conn, self.timeouts)
        except BaseException:
            conn.close()
            raise
        return conn

    def _run(self, lock_conn: Conn, conn: Conn, step: Step) -> DoneStep:
        ensure_held(lock_conn)
        # A SET in one migration (search_path, timeouts) must not leak into the next.
        conn.execute("RESET ALL")
        configure_session(conn, self.timeouts)
        m = step.migration
        if step.direction == "up":

            def write(c: Conn, duration_ms: int) -> None:
                ledger.record(c, step.namespace, m, duration_ms, self.applied_by)
        else:

            def write(c: Conn, duration_ms: int) -> None:
                ledger.forget(c, step.namespace, m.version)

        done = run_step(conn, step, write, self.timeouts, sleep=self.sleep)
        return DoneStep(step.namespace, m.version, m.name, step.direction, done.duration_ms, done.attempts)

    def _backup_first(self, requested: bool | None) -> str | None:
        wanted, reason = self.backup_reason(requested)
        if not wanted:
            log.info("migration_backup_skipped", reason=reason)
            return None
        # Imported when needed: backups need pg_dump and object storage, which plain migrations do not.
        from jobs.backup.dump import backup_database

        log.info("migration_backup_started", reason=reason)
        deadline = time.monotonic() + self.config.lock_wait_s
        while True:
            try:
                manifest = backup_database(self.settings, database_url=self.database_url)
                break
            except LockBusyError as exc:
                if time.monotonic() >= deadline:
                    raise LockBusyError(f"could not back up before migrating: {exc}; no migration was applied") from exc
                log.info("migration_backup_waiting", reason=str(exc), retry_in_s=BACKUP_BUSY_POLL_S)
                self.sleep(BACKUP_BUSY_POLL_S)
        log.info("migration_backup_created", backup_id=manifest.id, key=manifest.key, bytes=manifest.size)
        return manifest.id


def _raise_problems(plans: list[Plan], outcome: str) -> None:
    problems = [p for plan in plans for p in plan.problems]
    if problems:
        raise PlanError(_problem_text(problems, outcome))


def _problem_text(problems: list[str], outcome: str) -> str:
    if len(problems) == 1:
        return f"{problems[0]} ({outcome})"
    listed = "; ".join(f"({i}) {p}" for i, p in enumerate(problems, start=1))
    return f"{len(problems)} problems, {outcome}: {listed}"
