"""Credentials embedded in the S3 endpoint URL never appear in what storage reports."""

from __future__ import annotations

import pytest

from railyard.core.errors import RailyardError
from railyard.core.storage import open_store

USER, PASSWORD = "Sentinel-endpoint-user", "Sentinel-endpoint-pw"


def test_storage_messages_hide_the_endpoints_credentials(
    bucket: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint.replace("http://", f"http://{USER}:{PASSWORD}@"))
    reachable = open_store(f"s3://{bucket}/x", addressing_style="path").check()
    with pytest.raises(RailyardError) as missing:
        open_store(f"s3://{bucket}-missing/x", addressing_style="path").check()
    for text in (reachable, str(missing.value)):
        assert "***@127.0.0.1" in text and USER not in text and PASSWORD not in text, text
