"""The ``audit`` section: recording every connection, and where the records go."""

# setting() returns an attrs field declaration, not a shared default value.
# ruff: noqa: RUF009

from __future__ import annotations

import attrs

from conch_container.config.kinds import Bool, Choice, Int, Section, Str, at_least
from conch_container.config.schema import setting

MIN_PART_SIZE = 5 * 1024 * 1024


@attrs.frozen
class AuditFileConfig:
    """Audit records as one file per connection in a directory."""

    directory: str = setting(
        "directory", Str(), "/var/log/audit", doc="Existing, writable directory."
    )


@attrs.frozen
class AuditS3MetadataConfig:
    """What is exposed as S3 object metadata."""

    username: bool = setting("username", Bool(), False, doc="Add the username.")
    ip: bool = setting("ip", Bool(), False, doc="Add the client IP address.")


@attrs.frozen
class AuditS3Config:
    """Audit records uploaded to S3-compatible object storage."""

    local: str = setting("local", Str(), "/var/lib/audit", doc="Existing local spool directory.")
    access_key: str = setting("accessKey", Str(), "", doc="S3 access key (required).")
    secret_key: str = setting("secretKey", Str(), "", doc="S3 secret key (required).")
    bucket: str = setting("bucket", Str(), "", doc="Bucket name (required).")
    region: str = setting("region", Str(), "", doc="Region.")
    endpoint: str = setting("endpoint", Str(), "", doc="Custom endpoint URL (e.g. MinIO).")
    cacert: str = setting("cacert", Str(), "", doc="CA certificate (PEM text) for the endpoint.")
    acl: str = setting("acl", Str(), "", doc="Canned ACL for uploaded objects.")
    path_style_access: bool = setting(
        "pathStyleAccess", Bool(), False, doc="Use path-style bucket URLs."
    )
    upload_part_size: int = setting(
        "uploadPartSize",
        Int(at_least(MIN_PART_SIZE, "5242880 (5 MiB)")),
        MIN_PART_SIZE,
        doc="Multipart upload part size in bytes (5 MiB to 5 GiB; more counts as 5 GiB).",
    )
    parallel_uploads: int = setting(
        "parallelUploads",
        Int(at_least(1)),
        20,
        doc="Uploads (parts or whole logs) at the same time, across the gateway.",
    )
    metadata: AuditS3MetadataConfig = setting(
        "metadata",
        Section(AuditS3MetadataConfig),
        AuditS3MetadataConfig(),
        doc="Object metadata.",
    )


@attrs.frozen
class AuditInterceptConfig:
    """What is recorded besides connection and channel events."""

    stdin: bool = setting("stdin", Bool(), False, doc="Record standard input.")
    stdout: bool = setting("stdout", Bool(), False, doc="Record standard output.")
    stderr: bool = setting("stderr", Bool(), False, doc="Record standard error.")
    passwords: bool = setting("passwords", Bool(), False, doc="Record passwords.")
    forwarding: bool = setting(
        "forwarding", Bool(), False, doc="Record forwarded connections' data."
    )


@attrs.frozen
class AuditConfig:
    """The audit log: a record of every connection (logins, requests, I/O) for review."""

    enable: bool = setting("enable", Bool(), False, doc="Record connections.")
    format: str = setting(
        "format",
        Choice("none", "binary", "asciinema"),
        "none",
        doc="`none`, `binary` (ContainerSSH's CBOR format) or `asciinema`.",
    )
    storage: str = setting(
        "storage", Choice("none", "file", "s3"), "none", doc="`none`, `file` or `s3`."
    )
    file: AuditFileConfig = setting(
        "file", Section(AuditFileConfig), AuditFileConfig(), doc="File storage."
    )
    s3: AuditS3Config = setting("s3", Section(AuditS3Config), AuditS3Config(), doc="S3 storage.")
    intercept: AuditInterceptConfig = setting(
        "intercept",
        Section(AuditInterceptConfig),
        AuditInterceptConfig(),
        doc="What to record.",
    )
