"""The README's first quick-start command, run as written: ``scripts/quickstart``."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ROOT, VENV_BIN
from tests.e2e.conftest import child_env, run_cli
from tests.ports import free_port
from tests.unixuser import SHARED_WRITABLE_DIRS, UnixUser, temporary_user

COPY_IGNORE = shutil.ignore_patterns(
    ".venv", ".git", "backups", "__pycache__", ".*_cache", ".hypothesis", "node_modules"
)


def database_exists(admin_url: str, name: str) -> bool:
    with psycopg.connect(admin_url) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def compared_rows(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines() if line.startswith("    public.")]


EXPECTED_ROWS = [
    ["public.customers", "backup", "5000", "restored", "5000", "ok"],
    ["public.orders", "backup", "20000", "restored", "20000", "ok"],
]


def python_for(user: UnixUser) -> str:
    """A Python >= 3.11 that ``user`` can run (root's own may live where others cannot reach)."""
    candidates = [p for p in ("/usr/bin/python3", "/usr/local/bin/python3", shutil.which("python3")) if p]
    for python in candidates:
        if user.can_run(python, "-c", "import sys; assert sys.version_info >= (3, 11)"):
            return python
    pytest.fail(f"no Python >= 3.11 that an ordinary user can run (tried {candidates}); install python3")


def newcomer_checkout(user: UnixUser) -> Path:
    """A copy of this checkout owned by ``user``, with an installed .venv, so the quick start skips its install step.

    The .venv is this checkout's when ``user`` can run it; otherwise (its Python lives where only root can reach)
    one installed from uv.lock, quick from uv's cache, its files root's (hard links into the cache), with the
    install stamp written as scripts/install writes it.
    """
    checkout = user.mkdtemp("railyard-checkout-") / "railyard"
    shutil.copytree(ROOT, checkout, ignore=COPY_IGNORE, symlinks=True)
    subprocess.run(["chown", "-R", "-h", f"{user.uid}:{user.gid}", str(checkout)], check=True)
    if user.can_run(str(ROOT / ".venv" / "bin" / "python"), "-c", "import railyard"):
        subprocess.run([str(ROOT / "scripts" / "install"), "test"], check=True, capture_output=True, timeout=900)
        (checkout / ".venv").symlink_to(ROOT / ".venv")
        return checkout
    subprocess.run(
        [str(VENV_BIN / "uv"), "sync", "--locked", "--no-dev", "--quiet", "--python", python_for(user)],
        cwd=checkout,
        check=True,
        timeout=300,
    )
    digest = hashlib.sha256((checkout / "pyproject.toml").read_bytes() + (checkout / "uv.lock").read_bytes())
    (checkout / ".venv" / ".railyard-installed").write_text(f"{digest.hexdigest()} \n")
    return checkout


@pytest.fixture
def newcomer() -> Iterator[UnixUser]:
    with temporary_user() as user:
        yield user


@pytest.mark.timeout(300)  # 20-30 s on a quiet machine; the bound is for a loaded one
def test_quickstart_uses_a_server_that_answers_under_names_of_its_own_and_drops_them(
    pg_admin_url: str, tmp_path: Path
) -> None:
    env = {"BACKUP_STORAGE_URL": str(tmp_path / "backups"), "QUICKSTART_ADMIN_URL": pg_admin_url}
    quickstart_env = {k: v for k, v in child_env(**env).items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [str(ROOT / "scripts" / "quickstart")],
        env=quickstart_env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert 0 == result.returncode, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Done: the backup restored and every table matches." in result.stdout
    assert EXPECTED_ROWS == compared_rows(result.stdout)
    assert "private PostgreSQL" not in result.stdout
    created = re.search(r"creating demo database (railyard_demo_([0-9a-f]{8}))\n", result.stdout)
    assert created, result.stdout
    demo, token = created[1], created[2]
    assert f"restoring into railyard_restore_{token}\n" in result.stdout

    listed = run_cli("backups", "list", "--json", env=env)
    [backup] = json.loads(listed.stdout)
    assert (demo, 5000, 20000) == (
        backup["database"],
        backup["row_counts"]["public.customers"],
        backup["row_counts"]["public.orders"],
    )
    assert not database_exists(pg_admin_url, demo), "the demo database is dropped"
    assert not database_exists(pg_admin_url, f"railyard_restore_{token}"), "the scratch database is dropped"


@pytest.mark.timeout(300)  # 20-30 s on a quiet machine; the bound is for a loaded one
def test_quickstart_as_a_new_user_with_no_postgresql_runs_a_private_server_and_leaves_nothing_behind(
    newcomer: UnixUser,
) -> None:
    checkout = newcomer_checkout(newcomer)
    tmpdir = newcomer.mkdtemp("railyard-tmp-")
    closed_port = free_port()  # nothing listens there: the address the quick start tries first
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(newcomer.home),
        "TMPDIR": str(tmpdir),
        "LANG": "C.UTF-8",
        "QUICKSTART_ADMIN_URL": f"postgresql://postgres@127.0.0.1:{closed_port}/postgres",
    }
    result = newcomer.run([str(checkout / "scripts" / "quickstart")], env=env, cwd=newcomer.home, timeout=280)
    out = result.stdout
    assert 0 == result.returncode, out[-3000:] + result.stderr[-3000:]
    assert f"no PostgreSQL to use at postgresql://postgres@127.0.0.1:{closed_port}/postgres" in out
    assert "starting a private PostgreSQL server in" in out
    assert EXPECTED_ROWS == compared_rows(out)
    assert "Done: the backup restored and every table matches." in out

    assert [] == newcomer.processes(), "the private server is stopped"
    assert [] == list(tmpdir.iterdir()), "the run's temporary directory is removed"
    assert [] == list(newcomer.home.iterdir())
    outside = [
        p
        for p in newcomer.files_in(*SHARED_WRITABLE_DIRS, newcomer.home)
        if not p.is_relative_to(checkout.parent) and p not in (tmpdir, newcomer.home)
    ]
    assert [] == outside
    [dump] = list((checkout / "backups").rglob("*.dump.zst"))

    # The closing lines work as printed, from a new shell.
    lines = out.splitlines()
    start = lines.index("Next, from a new shell:")
    cd_line, list_line = (line.split("#")[0].strip() for line in lines[start + 1 : start + 3])
    assert (f"cd {checkout}", ".venv/bin/railyard backups list") == (cd_line, list_line)
    listed = newcomer.run(["sh", "-c", f"{cd_line} && {list_line} --json"], env=env, timeout=120)
    assert 0 == listed.returncode, listed.stderr
    [backup] = json.loads(listed.stdout)
    assert dump.name == Path(backup["key"]).name
    assert f"rm -rf {checkout / 'backups'} " in out
    assert f"rm -rf {checkout / '.venv'} " in out


def processes_mentioning(text: str) -> dict[int, str]:
    found = {}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if text in args:
                found[int(cmdline.parent.name)] = args
    return found


@pytest.mark.timeout(300)  # 20-30 s on a quiet machine; the bound is for a loaded one
def test_quickstart_as_root_with_no_postgresql_runs_the_private_server_as_nobody(tmp_path: Path) -> None:
    tmpdir = Path(tempfile.mkdtemp(prefix="railyard-root-tmp-"))  # reachable by nobody, unlike tmp_path
    tmpdir.chmod(0o755)
    closed_port = free_port()
    env = child_env(
        BACKUP_STORAGE_URL=str(tmp_path / "backups"),
        QUICKSTART_ADMIN_URL=f"postgresql://postgres@127.0.0.1:{closed_port}/postgres",
        TMPDIR=str(tmpdir),
    )
    env.pop("DATABASE_URL", None)
    try:
        result = subprocess.run(
            [str(ROOT / "scripts" / "quickstart")], env=env, cwd="/", capture_output=True, text=True, timeout=280
        )
        assert 0 == result.returncode, result.stdout[-3000:] + result.stderr[-3000:]
        assert "starting a private PostgreSQL server in" in result.stdout
        assert EXPECTED_ROWS == compared_rows(result.stdout)
        assert [] == list(tmpdir.iterdir()), "the run's temporary directory is removed"
        assert {} == processes_mentioning(str(tmpdir)), "the private server is stopped"
    finally:
        for pid in processes_mentioning(str(tmpdir)):  # a server this test's run left behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(tmpdir, ignore_errors=True)


def test_install_leaves_an_up_to_date_venv_as_it_is() -> None:
    subprocess.run([str(ROOT / "scripts" / "install"), "test"], check=True, capture_output=True, timeout=900)
    stamp = ROOT / ".venv" / ".railyard-installed"
    before = stamp.stat().st_mtime_ns
    again = subprocess.run([str(ROOT / "scripts" / "install")], capture_output=True, text=True, timeout=60, check=True)
    assert f"==> Railyard is already installed in {ROOT}/.venv\n" == again.stdout
    assert before == stamp.stat().st_mtime_ns
