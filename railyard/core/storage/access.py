"""Explicit S3 credentials for a store that must not use boto3's own variables (the copy destination)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class S3Access:
    """Credentials, region and endpoint for one S3 client; an empty field means boto3's default."""

    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)
    region: str = ""
    endpoint_url: str = ""
