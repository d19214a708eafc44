"""deploy/railway/railway.ts, evaluated with the pinned railway SDK, and the files services still read, in step.

The project file is type-checked by scripts/test (`tsc --noEmit` against the same SDK); here
it is run the way `railway config plan` runs it, and what it defines is compared with the
Procfile, the registry's longest job, railway.toml and the variables the README names.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from railyard.core import registry

ROOT = Path(__file__).resolve().parents[2]
PROJECT_DIR = ROOT / "deploy" / "railway"
TSX = PROJECT_DIR / "node_modules" / ".bin" / "tsx"
REPO = "acme-corp/railyard-fork"


def evaluate(**env: str) -> subprocess.CompletedProcess[str]:
    assert TSX.exists(), "deploy/railway/node_modules is missing: run scripts/test (it runs npm ci there)"
    return subprocess.run(
        [str(TSX), str(ROOT / "tests" / "railway_iac.mjs"), str(PROJECT_DIR / "railway.ts")],
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def resources() -> dict[str, dict[str, Any]]:
    result = evaluate(RAILYARD_GITHUB_REPO=REPO)
    assert 0 == result.returncode, result.stderr
    definition = json.loads(result.stdout)
    assert "railyard" == definition["name"]
    return {r["address"]: r for r in definition["resources"]}


def procfile(name: str) -> str:
    lines = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if ":" in line)
    return " ".join(shlex.split(lines[name]))


def literal(variables: dict[str, Any], name: str) -> str:
    assert "literal" == variables[name]["type"], variables[name]
    return str(variables[name]["value"])


def test_the_project_has_postgres_redis_a_bucket_the_worker_and_the_scheduler(resources) -> None:
    assert {
        "database.Postgres": "postgres",
        "database.Redis": "redis",
        "bucket.backups": None,
        "service.worker": None,
        "service.scheduler": None,
    } == {address: r.get("engine") for address, r in resources.items()}
    for name in ("worker", "scheduler"):
        service = resources[f"service.{name}"]
        assert {"type": "github", "repo": REPO, "branch": "main"} == service["source"]
        assert {"builder": "RAILPACK"} == service["build"]


def test_start_commands_are_the_procfiles_and_the_scheduler_runs_once(resources) -> None:
    worker, scheduler = resources["service.worker"], resources["service.scheduler"]
    assert procfile("worker") == worker["deploy"]["startCommand"]
    assert procfile("scheduler") == scheduler["deploy"]["startCommand"] == "python -m scheduler"
    assert procfile("scheduler") == literal(scheduler["variables"], "RAILPACK_START_CMD")
    assert (1, 1) == (worker["deploy"]["numReplicas"], scheduler["deploy"]["numReplicas"])
    assert "RAILPACK_START_CMD" not in worker["variables"]  # Railpack starts the Procfile's worker line


def test_draining_windows_match_the_longest_job_and_the_config_files(resources) -> None:
    worker = int(literal(resources["service.worker"]["variables"], "RAILWAY_DEPLOYMENT_DRAINING_SECONDS"))
    scheduler = int(literal(resources["service.scheduler"]["variables"], "RAILWAY_DEPLOYMENT_DRAINING_SECONDS"))
    assert registry.LONGEST_TIMEOUT_S + 60 <= worker
    assert worker == tomllib.loads((ROOT / "railway.toml").read_text())["deploy"]["drainingSeconds"]
    assert scheduler == tomllib.loads((ROOT / "railway.scheduler.toml").read_text())["deploy"]["drainingSeconds"]


def test_every_connection_setting_is_a_reference(resources) -> None:
    expected = {
        "DATABASE_URL": {"type": "reference", "resource": "database.Postgres", "output": "DATABASE_URL"},
        "REDIS_URL": {"type": "reference", "resource": "database.Redis", "output": "REDIS_URL"},
        "AWS_ACCESS_KEY_ID": {"type": "reference", "resource": "bucket.backups", "output": "ACCESS_KEY_ID"},
        "AWS_SECRET_ACCESS_KEY": {"type": "reference", "resource": "bucket.backups", "output": "SECRET_ACCESS_KEY"},
        "AWS_REGION": {"type": "reference", "resource": "bucket.backups", "output": "REGION"},
        "AWS_ENDPOINT_URL_S3": {"type": "reference", "resource": "bucket.backups", "output": "ENDPOINT"},
    }
    for name in ("worker", "scheduler"):
        variables = resources[f"service.{name}"]["variables"]
        assert expected == {key: variables[key] for key in expected}
        assert literal(variables, "BACKUP_STORAGE_URL").startswith("s3://${{backups.BUCKET}}/")
        assert "path" == literal(variables, "S3_ADDRESSING_STYLE")


def test_the_readme_names_the_variables_the_project_sets(resources) -> None:
    """The by-hand path's variable list and the project file's agree, service by service."""
    readme = (ROOT / "README.md").read_text()
    for name in ("worker", "scheduler"):
        block = re.search(rf"<!-- railway-variables: {name} -->\s*```\n(.*?)```", readme, re.S)
        assert block, f"README has no variable block for the {name} service"
        named = {line.split("=", 1)[0].strip() for line in block[1].splitlines() if "=" in line}
        assert set(resources[f"service.{name}"]["variables"]) == named


def test_railway_toml_files_start_what_the_procfile_starts() -> None:
    """For services that still read config-as-code, the two files say what the Procfile and the project say."""
    worker = tomllib.loads((ROOT / "railway.toml").read_text())["deploy"]
    scheduler = tomllib.loads((ROOT / "railway.scheduler.toml").read_text())["deploy"]
    assert procfile("worker") == worker["startCommand"]
    assert procfile("scheduler") == scheduler["startCommand"]
    assert 1 == scheduler["numReplicas"]


def test_a_missing_repository_is_a_clear_error() -> None:
    result = evaluate()
    assert 0 != result.returncode
    assert "set RAILYARD_GITHUB_REPO to the GitHub repository to deploy, as owner/name" in result.stderr
