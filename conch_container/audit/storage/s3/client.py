"""Calls into S3, run on the uploader's own bounded thread pool.

The ``thd_*`` functions are blocking botocore calls; they run in pool
threads, never touch Twisted objects, and raise only :class:`S3Error`, which
says whether trying again can help. Bodies are streamed from the spool file
by byte range (:class:`FileRange`): a part is never held in memory whole.

botocore is set up so that its behaviour is the uploader's to decide:

- no retries of its own (``total_max_attempts: 1``): the uploader retries
  what is safe to retry, with its backoff, its logging and its deadline;
- explicit connect and read timeouts, so that no call waits forever;
- checksums only where S3 requires them: many S3-compatible servers refuse
  the CRC headers and ``aws-chunked`` bodies newer SDKs send by default.
  Over plain HTTP the payload's SHA-256 is signed; over HTTPS TLS protects it;
- the endpoint, region and credentials come from the configuration only,
  never from ``AWS_*`` variables or ``~/.aws`` files of the gateway's user;
- certificates are checked against the system's CA bundle, plus ``cacert``
  when set (ContainerSSH adds it to the system pool); TLS 1.2 is the oldest
  version offered (Python's default for a client context since 3.10).
"""

from __future__ import annotations

import functools
import io
import os
import ssl
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO, ParamSpec, TypeVar

import attrs
import botocore.exceptions
import botocore.session
from botocore.config import Config

from conch_container.config.audit import AuditS3Config

P = ParamSpec("P")
T = TypeVar("T")

#: Error codes S3 answers when it wants the client to slow down or try again.
RETRYABLE_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "TooManyRequestsException",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "BadDigest",
    }
)


class S3Error(Exception):
    """A call to S3 (or the read of the spool file for it) failed.

    :ivar retryable: whether the same call may succeed later (a network
        error, a 5xx answer, throttling); False for what needs an operator
        (credentials, a missing bucket, a refused ACL, a local file gone).
    :ivar code: S3's error code (``AccessDenied``, ``NoSuchBucket``), if it answered.
    :ivar status: the HTTP status of its answer, if any.
    """

    def __init__(
        self, message: str, *, retryable: bool, code: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code
        self.status = status


def classify(error: Exception) -> S3Error:
    """The :class:`S3Error` for whatever botocore (or the spool file) raised."""
    if isinstance(error, S3Error):
        return error
    if isinstance(error, botocore.exceptions.ClientError):
        response: dict[str, Any] = error.response
        code = str(response.get("Error", {}).get("Code") or "") or None
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        retryable = (
            isinstance(status, int) and (status >= 500 or status == 429)
        ) or code in RETRYABLE_CODES
        message = str(response.get("Error", {}).get("Message") or error)
        return S3Error(
            f"{code or 'error'} (HTTP {status}): {message}",
            retryable=retryable,
            code=code,
            status=status if isinstance(status, int) else None,
        )
    if isinstance(error, botocore.exceptions.SSLError) and _certificate_refused(error):
        # A certificate that does not verify is a configuration matter, not weather.
        return S3Error(f"TLS certificate not trusted: {error}", retryable=False)
    if isinstance(error, botocore.exceptions.HTTPClientError | botocore.exceptions.ConnectionError):
        return S3Error(str(error), retryable=True)
    if isinstance(error, OSError):
        return S3Error(f"local file: {error}", retryable=False)
    return S3Error(str(error) or type(error).__name__, retryable=False)


def _certificate_refused(error: BaseException) -> bool:
    seen: set[int] = set()
    pending: list[object] = [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        pending.extend([current.__cause__, current.__context__, *current.args])
        pending.extend(getattr(current, "kwargs", {}).values())
    return False


def s3_errors(f: Callable[P, T]) -> Callable[P, T]:
    """Turn whatever ``f`` raises into an :class:`S3Error`."""

    @functools.wraps(f)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return f(*args, **kwargs)
        except Exception as error:
            raise classify(error) from error

    return wrapper


@attrs.frozen
class S3Settings:
    """Everything the client needs from ``audit.s3``, plus the transport limits."""

    bucket: str
    access_key: str
    secret_key: str = attrs.field(repr=False)
    region: str = ""
    endpoint: str = ""
    cacert: str = attrs.field(default="", repr=False)
    path_style: bool = False
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_connections: int = 10

    @classmethod
    def from_config(cls, config: AuditS3Config, **limits: Any) -> S3Settings:
        return cls(
            bucket=config.bucket,
            access_key=config.access_key,
            secret_key=config.secret_key,
            region=config.region,
            endpoint=config.endpoint,
            cacert=config.cacert,
            path_style=config.path_style_access,
            **limits,
        )


def system_ca_file() -> str | None:
    """The system's CA bundle, if OpenSSL knows one that exists."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def thd_write_ca_bundle(cacert: str) -> str:
    """A private temporary file holding the system's CAs and ``cacert``; its name.

    botocore takes a file name to verify with, and that bundle replaces the
    default one: the system's CAs are copied in so that ``cacert`` adds to
    them, as in ContainerSSH. The caller deletes the file.
    """
    base = system_ca_file()
    if base is None:
        from botocore.httpsession import DEFAULT_CA_BUNDLE

        base = DEFAULT_CA_BUNDLE
    fd, path = tempfile.mkstemp(prefix="conch-container-s3-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as out:
            with open(base, "rb") as system:
                out.write(system.read())
            out.write(b"\n" + cacert.strip().encode("utf-8") + b"\n")
    except BaseException:
        os.remove(path)
        raise
    return path


def thd_make_client(settings: S3Settings, ca_file: str | None) -> Any:
    """A botocore S3 client for ``settings``, verifying TLS with ``ca_file`` when given."""
    session = botocore.session.Session()
    config = Config(
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=settings.max_connections,
        s3={"addressing_style": "path" if settings.path_style else "auto"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        ignore_configured_endpoint_urls=True,
    )
    return session.create_client(
        "s3",
        region_name=settings.region or "us-east-1",
        endpoint_url=settings.endpoint or None,
        aws_access_key_id=settings.access_key,
        aws_secret_access_key=settings.secret_key,
        aws_session_token=None,
        verify=ca_file or system_ca_file() or True,
        config=config,
    )


class FileRange(io.RawIOBase):
    """``length`` bytes of ``file`` from ``offset``, as a seekable stream of its own.

    botocore reads a body in chunks (to sign it, then to send it) and seeks
    back to 0 between, so this is all the memory a part upload takes.
    """

    def __init__(self, file: BinaryIO, offset: int, length: int) -> None:
        super().__init__()
        self._file = file
        self._offset = offset
        self._length = length
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def __len__(self) -> int:
        return self._length - self._position

    def read(self, size: int | None = -1) -> bytes:
        left = self._length - self._position
        if size is None or size < 0 or size > left:
            size = left
        if size == 0:
            return b""
        data = os.pread(self._file.fileno(), size, self._offset + self._position)
        if not data:
            raise OSError(f"{self._file.name} ended before the part did")
        self._position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        self._position = min(max(base + offset, 0), self._length)
        return self._position

    def tell(self) -> int:
        return self._position


def _open_range(path: str, offset: int, length: int) -> tuple[BinaryIO, FileRange]:
    """Open ``path`` for a part of ``length`` bytes at ``offset``.

    :raises OSError: when the file is gone or shorter than the part (someone
        truncated the spool; sending it would stall the request until its
        timeout).
    """
    file = open(path, "rb")
    try:
        size = os.fstat(file.fileno()).st_size
        if size < offset + length:
            raise OSError(f"{path} has {size} bytes, fewer than the {offset + length} expected")
    except BaseException:
        file.close()
        raise
    return file, FileRange(file, offset, length)


def _upload_args(bucket: str, key: str, metadata: dict[str, str], acl: str) -> dict[str, Any]:
    args: dict[str, Any] = {
        "Bucket": bucket,
        "Key": key,
        "ContentType": "application/octet-stream",
        "Metadata": metadata,
    }
    if acl:
        args["ACL"] = acl
    return args


@s3_errors
def thd_put_object(
    client: Any, bucket: str, key: str, path: str, size: int, metadata: dict[str, str], acl: str
) -> None:
    """Upload the first ``size`` bytes of ``path`` as the whole object ``key``."""
    file, body = _open_range(path, 0, size)
    with file:
        client.put_object(Body=body, ContentLength=size, **_upload_args(bucket, key, metadata, acl))


@s3_errors
def thd_create_multipart(
    client: Any, bucket: str, key: str, metadata: dict[str, str], acl: str
) -> str:
    """Start a multipart upload of ``key``; its upload id."""
    answer = client.create_multipart_upload(**_upload_args(bucket, key, metadata, acl))
    return str(answer["UploadId"])


@s3_errors
def thd_upload_part(
    client: Any,
    bucket: str,
    key: str,
    upload_id: str,
    number: int,
    path: str,
    offset: int,
    length: int,
) -> str:
    """Upload bytes ``offset`` to ``offset + length`` of ``path`` as part ``number``; its ETag."""
    file, body = _open_range(path, offset, length)
    with file:
        answer = client.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
            ContentLength=length,
        )
    return str(answer["ETag"])


@s3_errors
def thd_complete_multipart(
    client: Any, bucket: str, key: str, upload_id: str, etags: Sequence[str]
) -> None:
    """Finish the upload from its parts, numbered from 1 in the order given."""
    parts = [{"PartNumber": number, "ETag": etag} for number, etag in enumerate(etags, 1)]
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )


@s3_errors
def thd_list_multipart(client: Any, bucket: str, key: str) -> list[str]:
    """The ids of the unfinished multipart uploads of exactly ``key``."""
    found: list[str] = []
    markers: dict[str, str] = {}
    while True:
        answer = client.list_multipart_uploads(Bucket=bucket, Prefix=key, **markers)
        found += [u["UploadId"] for u in answer.get("Uploads", []) if u.get("Key") == key]
        if not answer.get("IsTruncated"):
            return found
        markers = {
            "KeyMarker": answer.get("NextKeyMarker", ""),
            "UploadIdMarker": answer.get("NextUploadIdMarker", ""),
        }


@s3_errors
def thd_abort_multipart(client: Any, bucket: str, key: str, upload_id: str) -> None:
    client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)


def thd_close_client(client: Any) -> None:
    """Release the client's connections."""
    client.close()
