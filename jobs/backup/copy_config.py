"""The second destination: BACKUP_COPY_STORAGE_URL and its own credentials (BACKUP_COPY_AWS_*).

With ``BACKUP_COPY_AWS_ACCESS_KEY_ID`` set, the copy store uses only the ``BACKUP_COPY_AWS_*``
variables (another provider, another account; no endpoint means AWS itself). Without any of
them it uses the primary's ``AWS_*`` variables: another bucket with the same provider.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from railyard.core.errors import ConfigError
from railyard.core.settings import DEFAULT_BACKUP_STORAGE_URL, Settings, redact_url, storage_url_problems
from railyard.core.storage import ObjectStore, StorageLocation, open_store
from railyard.core.storage.access import S3Access

URL_VARIABLE = "BACKUP_COPY_STORAGE_URL"
KEY_ID_VARIABLE = "BACKUP_COPY_AWS_ACCESS_KEY_ID"
SECRET_VARIABLE = "BACKUP_COPY_AWS_SECRET_ACCESS_KEY"  # noqa: S105  (a variable's name, not a secret)
REGION_VARIABLE = "BACKUP_COPY_AWS_REGION"
ENDPOINT_VARIABLE = "BACKUP_COPY_AWS_ENDPOINT_URL_S3"
ACCESS_VARIABLES = (KEY_ID_VARIABLE, SECRET_VARIABLE, REGION_VARIABLE, ENDPOINT_VARIABLE)


@dataclass(frozen=True)
class CopyConfig:
    """Where every completed backup is copied, and with which credentials (None: boto3's variables)."""

    storage_url: str
    access: S3Access | None = None

    @property
    def location(self) -> StorageLocation:
        return StorageLocation.parse(self.storage_url)

    def open_store(self, settings: Settings) -> ObjectStore:
        """The copy's store, reached with its own credentials (or boto3's variables)."""
        return open_store(self.location, addressing_style=settings.s3_addressing_style, access=self.access)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CopyConfig | None:
        """The copy destination, or None when BACKUP_COPY_STORAGE_URL is unset; ConfigError lists every problem."""
        env = os.environ if environ is None else environ
        value = {name: env.get(name, "").strip() for name in (URL_VARIABLE, *ACCESS_VARIABLES)}
        url = value[URL_VARIABLE]
        problems: list[str] = []
        if not url:
            stray = [name for name in ACCESS_VARIABLES if value[name]]
            if stray:
                problems.append(
                    f"{', '.join(stray)} {'is' if len(stray) == 1 else 'are'} set but {URL_VARIABLE} is not; "
                    "set it to the copy's bucket (s3://bucket/prefix) or unset them"
                )
                raise ConfigError(problems)
            return None
        problems += storage_url_problems(URL_VARIABLE, url)
        primary = env.get("BACKUP_STORAGE_URL", "").strip() or DEFAULT_BACKUP_STORAGE_URL
        if not problems and StorageLocation.parse(url) == StorageLocation.parse(primary):
            problems.append(
                f"{URL_VARIABLE} is the same place as BACKUP_STORAGE_URL; a copy must live in another bucket "
                "(ideally with another provider)"
            )
        if bool(value[KEY_ID_VARIABLE]) != bool(value[SECRET_VARIABLE]):
            problems.append(f"set both {KEY_ID_VARIABLE} and {SECRET_VARIABLE}, or neither (then AWS_* are used)")
        endpoint = value[ENDPOINT_VARIABLE]
        if endpoint and urlsplit(endpoint).scheme not in ("http", "https"):
            problems.append(
                f"{ENDPOINT_VARIABLE}={redact_url(endpoint, userinfo=True)!r} is not an http(s) URL; "
                "e.g. https://s3.example.com"
            )
        if problems:
            raise ConfigError(problems)
        access = None
        if any(value[name] for name in ACCESS_VARIABLES):
            access = S3Access(
                access_key_id=value[KEY_ID_VARIABLE],
                secret_access_key=value[SECRET_VARIABLE],
                region=value[REGION_VARIABLE],
                endpoint_url=endpoint,
            )
        return cls(storage_url=url, access=access)
