"""Encrypted backups: age streams the worker cannot undo, restorable with Railyard or the age CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest
from pyrage import x25519

from jobs.backup.dump import backup_database
from jobs.backup.encryption import EncryptionConfig
from jobs.backup.restore import restore_backup
from railyard.core.errors import ConfigError, PermanentError
from railyard.core.settings import Settings
from tests.conftest import ROOT
from tests.e2e.conftest import child_env, run_cli
from tests.integration.test_backup import SCHEMA_SQL, table_digests

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def keypair() -> tuple[str, str]:
    identity = x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def seeded(database_url: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
    return database_url


def test_encrypted_round_trip_on_s3(database_url, new_database, bucket, s3_env, keypair, monkeypatch) -> None:
    secret, public = keypair
    settings = Settings.from_env(
        {
            "DATABASE_URL": seeded(database_url),
            "BACKUP_STORAGE_URL": f"s3://{bucket}/enc",
            "S3_ADDRESSING_STYLE": "path",
        }
    )
    manifest = backup_database(settings, encryption=EncryptionConfig(recipients=(public,)))
    assert manifest.key.endswith(".dump.zst.age")
    assert {"format": "age", "recipients": [public]} == manifest.encryption
    assert secret not in manifest.to_json().decode()

    with pytest.raises(PermanentError, match="BACKUP_ENCRYPTION_IDENTITY"):
        restore_backup(settings, manifest.id, new_database)
    monkeypatch.setenv("BACKUP_ENCRYPTION_IDENTITY", str(x25519.Identity.generate()))
    with pytest.raises(PermanentError, match="cannot be decrypted with the configured identity"):
        restore_backup(settings, manifest.id, new_database)
    with psycopg.connect(new_database) as conn:
        assert [] == conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'app'").fetchall()

    monkeypatch.setenv("BACKUP_ENCRYPTION_IDENTITY", secret)
    restore_backup(settings, manifest.id, new_database)
    assert table_digests(database_url) == table_digests(new_database)


def test_age_cli_recipe_from_readme(database_url, new_database, tmp_path, keypair) -> None:
    """The README's encrypted recipe, as written: age -d | zstd -d | pg_restore."""
    secret, public = keypair
    store = tmp_path / "store"
    env = {
        "DATABASE_URL": seeded(database_url),
        "BACKUP_STORAGE_URL": str(store),
        "BACKUP_ENCRYPTION_RECIPIENTS": public,
    }
    result = run_cli("backup", env=env)
    assert 0 == result.returncode, result.stderr
    key = result.stdout.split()[1]
    (tmp_path / "key.txt").write_text(f"# created: test\n# public key: {public}\n{secret}\n")

    text = (ROOT / "README.md").read_text()
    marker = text.index("<!-- recipe: restore-encrypted -->")
    recipe = text[marker:].split("```sh\n", 1)[1].split("```", 1)[0]
    values = {"BACKUP_FILE": str(store / key), "TARGET_URL": new_database}
    lines = [
        f"{line.split('=', 1)[0]}={values[line.split('=', 1)[0]]}" if line.split("=", 1)[0] in values else line
        for line in recipe.splitlines()
    ]
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(lines)],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    assert table_digests(database_url) == table_digests(new_database)
    assert secret not in result.stdout + result.stderr


def test_identity_never_reaches_logs(database_url, new_database, tmp_path, keypair) -> None:
    secret, public = keypair
    env = {
        "DATABASE_URL": seeded(database_url),
        "BACKUP_STORAGE_URL": str(tmp_path / "store"),
        "BACKUP_ENCRYPTION_RECIPIENTS": public,
        "BACKUP_ENCRYPTION_IDENTITY": secret,
        "LOG_LEVEL": "DEBUG",
    }
    outputs = []
    for args in (
        ("backup",),
        ("backups", "list", "--json"),
        ("restore", "latest", "--yes", "--target-url", new_database),
    ):
        result = run_cli(*args, env=env)
        assert 0 == result.returncode, result.stderr
        outputs.append(result.stdout + result.stderr)
    assert all(secret not in out for out in outputs)
    manifests = list((tmp_path / "store").rglob("*.manifest.json"))
    assert 1 == len(manifests) and secret not in manifests[0].read_text()


def test_bad_keys_are_reported_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        EncryptionConfig.from_env(
            {
                "BACKUP_ENCRYPTION_RECIPIENTS": "age1notakey, ssh-rsa AAAA",
                "BACKUP_ENCRYPTION_IDENTITY_FILE": str(tmp_path / "missing.txt"),
            }
        )
    assert 4 == len(info.value.problems)  # 'ssh-rsa AAAA' is two wrong entries
    assert "age1notakey" in info.value.problems[0]
    keyfile = tmp_path / "key.txt"
    identity = x25519.Identity.generate()
    keyfile.write_text(f"# comment\n{identity}\n")
    assert str(identity) == EncryptionConfig.from_env({"BACKUP_ENCRYPTION_IDENTITY_FILE": str(keyfile)}).identity
