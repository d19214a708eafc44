"""S3 backend (AWS, Cloudflare R2, MinIO, Railway buckets) on boto3.

Credentials, region and endpoint come from boto3's own variables (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL); Railyard
adds only the addressing style. Streaming uploads use multipart with equal-size parts
uploaded concurrently, so memory is bounded by part_size x (concurrency + 1).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import threading
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import boto3
import structlog
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from railyard.core.errors import (
    ConfigError,
    NotFoundError,
    ObjectExistsError,
    PermanentError,
    RailyardError,
    StorageError,
)
from railyard.core.settings import redact_url
from railyard.core.storage.access import S3Access
from railyard.core.storage.base import (
    MAX_PARTS,
    MIN_PART_SIZE,
    READ_CHUNK_SIZE,
    IncompleteUpload,
    ObjectInfo,
    ObjectStore,
    Upload,
)
from railyard.core.storage.lock import ObjectLock, object_lock_from_env

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = structlog.get_logger()

CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 120
DEFAULT_MAX_ATTEMPTS = 5  # botocore's standard retry mode, per request, with backoff; AWS_MAX_ATTEMPTS overrides
# Error codes for "this bucket has no object lock configuration" (AWS, moto, MinIO).
NO_LOCK_CODES = ("ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound", "InvalidRequest")


SSE_MODES = ("AES256", "aws:kms")


def put_options(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Server-side encryption and storage class for every object written (S3_SSE, S3_STORAGE_CLASS)."""
    env = os.environ if environ is None else environ
    problems: list[str] = []
    options: dict[str, str] = {}
    sse = env.get("S3_SSE", "").strip()
    if sse:
        if sse not in SSE_MODES:
            problems.append(f"S3_SSE={sse!r} is not one of {', '.join(SSE_MODES)}")
        options["ServerSideEncryption"] = sse
    key_id = env.get("S3_SSE_KMS_KEY_ID", "").strip()
    if key_id:
        if sse != "aws:kms":
            problems.append("S3_SSE_KMS_KEY_ID is set but S3_SSE is not aws:kms; set S3_SSE=aws:kms")
        options["SSEKMSKeyId"] = key_id
    storage_class = env.get("S3_STORAGE_CLASS", "").strip()
    if storage_class:
        if not storage_class.replace("_", "").isalnum() or not storage_class.isupper():
            problems.append(f"S3_STORAGE_CLASS={storage_class!r} is not an S3 storage class such as STANDARD_IA")
        options["StorageClass"] = storage_class
    if problems:
        raise ConfigError(problems)
    return options


def make_client(addressing_style: str = "auto", access: S3Access | None = None) -> S3Client:
    """An S3 client from boto3's variables, or from ``access`` where it sets a field.

    With its own access key, ``access`` never takes the endpoint from the environment.
    """
    config = Config(
        s3={"addressing_style": addressing_style},  # type: ignore[arg-type]
        retries={"mode": "standard", "max_attempts": int(os.environ.get("AWS_MAX_ATTEMPTS") or DEFAULT_MAX_ATTEMPTS)},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        # Some S3-compatible servers reject the CRC32 checksums boto3 sends by default;
        # integrity is checked on our side with sha256 in the manifest.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    if access is None:
        return boto3.session.Session().client("s3", config=config)
    if access.access_key_id:
        # Another account's keys must not reach the primary's AWS_ENDPOINT_URL_S3: no endpoint means AWS.
        config = config.merge(Config(ignore_configured_endpoint_urls=True))  # type: ignore[call-arg]  # botocore >= 1.31; stubs lag
    return boto3.session.Session().client(
        "s3",
        config=config,
        aws_access_key_id=access.access_key_id or None,
        aws_secret_access_key=access.secret_access_key or None,
        region_name=access.region or None,
        endpoint_url=access.endpoint_url or None,
    )


class S3Upload(Upload):
    """Multipart upload with equal-size parts, created lazily.

    An object smaller than one part is sent with a single PUT when completed, so a small
    database costs one request and leaves nothing to clean up if it fails.
    """

    def __init__(self, store: S3Store, key: str, part_size: int, concurrency: int, if_absent: bool = False):
        if part_size < MIN_PART_SIZE:
            raise PermanentError(f"part size {part_size} is below the {MIN_PART_SIZE} byte minimum")
        self.key = key
        self._store = store
        self._part_size = part_size
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._upload_id: str | None = None
        self._parts: dict[int, str] = {}
        self._futures: list[Future[None]] = []
        self._slots = threading.BoundedSemaphore(concurrency)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="s3-part")
        self._error: BaseException | None = None
        self._if_absent = if_absent
        self._retention = store.retention()

    def write(self, data: bytes) -> None:
        self._raise_part_error()
        view = memoryview(data)
        while view:
            room = self._part_size - self._buffered
            piece = view[:room]
            self._buffer.append(bytes(piece))
            self._buffered += len(piece)
            self.bytes_written += len(piece)
            view = view[room:]
            if self._buffered == self._part_size:
                self._flush_part()

    def _flush_part(self) -> None:
        body = b"".join(self._buffer)
        self._buffer, self._buffered = [], 0
        if self._upload_id is None:
            response = self._store.call(
                "create_multipart_upload",
                Bucket=self._store.bucket,
                Key=self.key,
                **self._retention,
                **self._store.put_options,
            )
            self._upload_id = response["UploadId"]
        number = len(self._futures) + 1
        if number > MAX_PARTS:
            raise PermanentError(
                f"object {self.key!r} needs more than {MAX_PARTS} parts of {self._part_size} bytes; "
                "raise BACKUP_PART_SIZE_MB"
            )
        self._slots.acquire()  # blocks while `concurrency` parts are in flight: the memory ceiling
        self._futures.append(self._pool.submit(self._send_part, number, body))

    def _send_part(self, number: int, body: bytes) -> None:
        try:
            response = self._store.call(
                "upload_part",
                Bucket=self._store.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
                **self._store.body_checksum(body),
            )
            self._parts[number] = response["ETag"]
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self._slots.release()

    def _raise_part_error(self) -> None:
        if self._error is not None:
            error = self._error
            raise error if isinstance(error, RailyardError) else StorageError(str(error))

    def _complete(self) -> None:
        condition = self._store.condition(self.key) if self._if_absent else {}
        if self._upload_id is None:
            # One PUT; after a collision the bytes are still here, so retarget() can move them.
            body = b"".join(self._buffer)
            self._store.call(
                "put_object",
                Bucket=self._store.bucket,
                Key=self.key,
                Body=body,
                **condition,
                **self._retention,
                **self._store.body_checksum(body),
                **self._store.put_options,
            )
            self._buffer = []
            self._pool.shutdown(wait=True)
            return
        try:
            if self._buffered:
                self._flush_part()
            for future in self._futures:
                future.exception()
            self._raise_part_error()
            parts = [{"PartNumber": n, "ETag": self._parts[n]} for n in sorted(self._parts)]
            self._store.call(
                "complete_multipart_upload",
                Bucket=self._store.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
                **condition,
            )
            self._store.settle_retention(self.key, self._retention)
        except BaseException:
            self._abort()
            raise
        finally:
            self._pool.shutdown(wait=True)

    def retarget(self, key: str) -> bool:
        if self._upload_id is not None:
            return False  # the parts belong to an upload of the old key
        self.key = key
        return True

    def _abort(self) -> None:
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._buffer = []
        if self._upload_id is not None:
            upload = IncompleteUpload(key=self.key, upload_id=self._upload_id, initiated=datetime.fromtimestamp(0, UTC))
            try:
                self._store.abort_incomplete_upload(upload)
            except RailyardError as exc:
                # Left for the stale-upload cleanup, which aborts uploads older than a day.
                log.warning("multipart_abort_failed", key=self.key, error=str(exc))


PROBE_NAME = ".railyard-write-probe-"


class S3Store(ObjectStore):
    """An S3 bucket.

    ``prefix`` is where the conditional-write probe may write (the storage location's prefix).
    With ``lock`` (S3_OBJECT_LOCK) every object is written with a retention date.
    """

    def __init__(
        self,
        bucket: str,
        *,
        addressing_style: str = "auto",
        client: S3Client | None = None,
        prefix: str = "",
        lock: ObjectLock | Literal["env"] | None = None,
        access: S3Access | None = None,
    ):
        self.bucket = bucket
        self.client = client or make_client(addressing_style, access)
        # S3_SSE and S3_STORAGE_CLASS name the primary provider's options; a store with its own access: its defaults.
        self.put_options = put_options() if access is None else {}
        self.prefix = prefix.strip("/")
        self._conditional: bool | None = None
        self.lock = object_lock_from_env() if lock == "env" else lock

    def retention(self, now: datetime | None = None) -> dict[str, Any]:
        """Object lock parameters for a write starting ``now``: empty without S3_OBJECT_LOCK."""
        if self.lock is None:
            return {}
        until = self.lock.retain_until(now or datetime.now(UTC)).replace(microsecond=0)
        return {"ObjectLockMode": self.lock.mode, "ObjectLockRetainUntilDate": until}

    def body_checksum(self, body: bytes) -> dict[str, str]:
        """Content-MD5 for a write to a locked bucket, which S3 requires.

        botocore >= 1.36 no longer sends Content-MD5 itself, and request checksums are off
        (``when_required``) for servers that reject them; MD5 is what every provider accepts.
        """
        if self.lock is None:
            return {}
        return {"ContentMD5": base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()}

    def settle_retention(self, key: str, retention: dict[str, Any]) -> None:
        """Make sure ``key`` carries the retention its upload asked for.

        A multipart upload takes the lock from CreateMultipartUpload on AWS, but not every
        server applies it on completion (moto does not): the date is read back and set when short.
        """
        if not retention:
            return
        wanted = retention["ObjectLockRetainUntilDate"]
        current = self.locked_until(key)
        if current is None or current < wanted:
            self.call(
                "put_object_retention",
                Bucket=self.bucket,
                Key=key,
                Retention={"Mode": retention["ObjectLockMode"], "RetainUntilDate": wanted},
            )

    def refuses_overwrite(self) -> bool:
        """Probe once whether the server enforces ``If-None-Match: *``.

        AWS S3, Cloudflare R2 and MinIO do; some S3-compatible servers reject the header,
        others (rclone's ``serve s3``) accept it and overwrite anyway. The probe writes one
        small object twice under the prefix, and deletes it.
        """
        if self._conditional is None:
            key = f"{self.prefix}/{PROBE_NAME}{uuid.uuid4().hex}".lstrip("/")
            try:
                self.call("put_object", Bucket=self.bucket, Key=key, Body=b"1", IfNoneMatch="*", **self.put_options)
                self.call("put_object", Bucket=self.bucket, Key=key, Body=b"2", IfNoneMatch="*", **self.put_options)
                self._conditional = False  # the second write went through: the header is ignored
            except ObjectExistsError:
                self._conditional = True
            except PermanentError as exc:
                log.info("conditional_writes_rejected", endpoint=self._endpoint(), error=str(exc))
                self._conditional = False
            finally:
                with contextlib.suppress(RailyardError):
                    self.delete(key)
            log.info("conditional_writes_probed", endpoint=self._endpoint(), enforced=self._conditional)
        return self._conditional

    def condition(self, key: str) -> dict[str, str]:
        """The header that makes a write create-only, where the server enforces it."""
        return {"IfNoneMatch": "*"} if self.refuses_overwrite() else {}

    def call(self, operation: str, **params: Any) -> Any:
        """Run one S3 API call, turning botocore errors into Railyard's two families."""
        try:
            return getattr(self.client, operation)(**params)
        except ClientError as exc:
            raise self._client_error(exc, params.get("Key")) from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 request {operation} to {self._endpoint()} failed: {exc}") from exc

    def _endpoint(self) -> str:
        """The endpoint for messages: any user and password embedded in it shown as ``***``."""
        return redact_url(str(self.client.meta.endpoint_url), userinfo=True)

    def _client_error(self, exc: ClientError, key: str | None) -> RailyardError:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        where = f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}"
        if code == "NoSuchBucket":
            return PermanentError(
                f"bucket {self.bucket!r} does not exist at {self._endpoint()}; create it or fix BACKUP_STORAGE_URL"
            )
        if code in ("NoSuchKey", "404", "NoSuchUpload"):
            return NotFoundError(f"no object at {where}")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403") or status == 403:
            return PermanentError(
                f"S3 refused access to {where} ({code}); check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY "
                "and the bucket's permissions"
            )
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict") or status in (409, 412):
            return ObjectExistsError(f"{where} already exists; nothing was overwritten")
        if status >= 500 or code in ("SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"):
            return StorageError(f"S3 server error at {where}: {code or status}")
        return PermanentError(f"S3 rejected the request for {where}: {code} {error.get('Message', '')}".strip())

    def location(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}"

    def check(self) -> str:
        try:
            self.call("head_bucket", Bucket=self.bucket)
        except NotFoundError as exc:  # HEAD responses carry no error code, only 404
            raise PermanentError(
                f"bucket {self.bucket!r} does not exist at {self._endpoint()}; create it or fix BACKUP_STORAGE_URL"
            ) from exc
        if self.lock is not None:
            self._check_lock_enabled(self.lock)
            return f"bucket {self.bucket!r} reachable at {self._endpoint()}, object lock {self.lock.describe()}"
        return f"bucket {self.bucket!r} reachable at {self._endpoint()}"

    def _check_lock_enabled(self, lock: ObjectLock) -> None:
        """A lock that silently does nothing is worse than none: refuse a bucket without object lock."""
        try:
            config = self.client.get_object_lock_configuration(Bucket=self.bucket)
            enabled = config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) not in NO_LOCK_CODES:
                raise self._client_error(exc, None) from exc
            enabled = False
        except BotoCoreError as exc:
            raise StorageError(f"S3 request get_object_lock_configuration to {self._endpoint()} failed: {exc}") from exc
        if not enabled:
            raise PermanentError(
                f"S3_OBJECT_LOCK={lock.mode.lower()} asks for object lock, but bucket {self.bucket!r} does not have "
                "object lock enabled; use a bucket created with object lock enabled, or unset S3_OBJECT_LOCK"
            )

    def locked_until(self, key: str) -> datetime | None:
        """The latest retention date of any version of ``key``, or None when none is locked."""
        latest: datetime | None = None
        for version in self._versions(key) if self.lock is not None else [None]:
            extra = {"VersionId": version} if version else {}
            try:
                response = self.call("head_object", Bucket=self.bucket, Key=key, **extra)
            except NotFoundError:
                continue
            until = response.get("ObjectLockRetainUntilDate") if response.get("ObjectLockMode") else None
            if until is not None and (latest is None or until > latest):
                latest = until
        return latest

    def _versions(self, key: str) -> list[str | None]:
        """Version ids of ``key``'s objects (not delete markers)."""
        paginator = self.client.get_paginator("list_object_versions")
        found: list[str | None] = []
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
                found += [v.get("VersionId") for v in page.get("Versions", []) if v["Key"] == key]
        except ClientError as exc:
            raise self._client_error(exc, key) from exc
        except BotoCoreError as exc:
            raise StorageError(f"listing versions of s3://{self.bucket}/{key} failed: {exc}") from exc
        return found

    def open_upload(
        self, key: str, *, part_size: int = MIN_PART_SIZE, concurrency: int = 4, if_absent: bool = False
    ) -> Upload:
        return S3Upload(self, key, part_size, concurrency, if_absent)

    def iter_get(self, key: str, chunk_size: int = READ_CHUNK_SIZE, *, start: int = 0) -> Iterator[bytes]:
        params = {"Bucket": self.bucket, "Key": key, **({"Range": f"bytes={start}-"} if start else {})}
        try:
            response = self.client.get_object(**params)  # type: ignore[arg-type]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return  # start at or past the end: nothing to read
            raise self._client_error(exc, key) from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 request get_object to {self._endpoint()} failed: {exc}") from exc
        body = response["Body"]
        try:
            while True:
                try:
                    chunk = body.read(chunk_size)
                except BotoCoreError as exc:
                    raise StorageError(f"reading s3://{self.bucket}/{key} failed: {exc}") from exc
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        extra = self.condition(key) if if_absent else {}
        if if_absent and not extra and self.head(key) is not None:
            # The server cannot refuse for us; writers use keys no one else chooses, this catches the rest.
            raise ObjectExistsError(f"s3://{self.bucket}/{key} already exists; nothing was overwritten")
        extra |= self.retention() | self.body_checksum(data)
        self.call("put_object", Bucket=self.bucket, Key=key, Body=data, **extra, **self.put_options)

    def head(self, key: str) -> ObjectInfo | None:
        try:
            response = self.call("head_object", Bucket=self.bucket, Key=key)
        except NotFoundError:
            return None
        return ObjectInfo(key=key, size=response["ContentLength"], modified=response["LastModified"])

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield ObjectInfo(key=item["Key"], size=item["Size"], modified=item["LastModified"])
        except ClientError as exc:
            raise self._client_error(exc, None) from exc
        except BotoCoreError as exc:
            raise StorageError(f"listing s3://{self.bucket}/{prefix} failed: {exc}") from exc

    def delete(self, key: str) -> None:
        if self.lock is None:
            self.call("delete_object", Bucket=self.bucket, Key=key)
            return
        # A lock-enabled bucket is versioned: a plain delete would only hide the object behind a
        # delete marker. Every version and marker of the key goes; S3 refuses any still locked.
        paginator = self.client.get_paginator("list_object_versions")
        try:
            pages = list(paginator.paginate(Bucket=self.bucket, Prefix=key))
        except ClientError as exc:
            raise self._client_error(exc, key) from exc
        except BotoCoreError as exc:
            raise StorageError(f"listing versions of s3://{self.bucket}/{key} failed: {exc}") from exc
        for page in pages:
            for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                if entry["Key"] == key:
                    self.call("delete_object", Bucket=self.bucket, Key=key, VersionId=entry["VersionId"])

    def list_incomplete_uploads(self, prefix: str = "") -> Iterator[IncompleteUpload]:
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Uploads", []):
                    yield IncompleteUpload(key=item["Key"], upload_id=item["UploadId"], initiated=item["Initiated"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                return  # rclone's serve s3 answers a listing with no uploads this way
            raise self._client_error(exc, None) from exc
        except BotoCoreError as exc:
            raise StorageError(f"listing uploads in s3://{self.bucket}/{prefix} failed: {exc}") from exc

    def abort_incomplete_upload(self, upload: IncompleteUpload) -> None:
        with contextlib.suppress(NotFoundError):  # already completed or aborted
            self.call("abort_multipart_upload", Bucket=self.bucket, Key=upload.key, UploadId=upload.upload_id)
