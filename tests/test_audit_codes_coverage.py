"""Every ``AUDIT_S3_*`` message code is produced by a test that asserts it.

As for the Docker backend (the checks are :mod:`tests.codes_coverage`'s):
:data:`PRODUCERS` maps each ``AUDIT_S3_*`` code of
:mod:`conch_container.messages` to the tests (``module.Class.method``) that
drive the ``s3`` storage into the situation the code's explanation names and
assert the code. Most run against a real S3-compatible server and the real
file system; the few that need the operating system to fail where Linux
will not on demand (a close that fails, as on NFS; a file root may not
delete) inject the OS error.

When a new ``AUDIT_S3_*`` code is added, add its producing test here.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.codes_coverage import CodesCoverageMixin

_UPLOAD = "tests.audit.test_s3_upload.UploadTests"
_OUTAGE = "tests.audit.test_s3_outage.OutageTests"
_REFUSED = "tests.audit.test_s3_refusals.RefusedTests"
_REVOKED = "tests.audit.test_s3_refusals.RevokedTests"
_RECOVERY = "tests.audit.test_s3_recovery.RecoveryTests"
_RECOVERY_REFUSED = "tests.audit.test_s3_recovery.RecoveryRefusedTests"
_SINK = "tests.audit.test_s3_spool.SpoolSinkTests"
_SIDECAR = "tests.audit.test_s3_spool.SidecarTests"
_TLS = "tests.audit.test_s3_tls.TLSTests"

#: Each ``AUDIT_S3_*`` code -> the tests that produce it and assert it.
PRODUCERS: dict[str, tuple[str, ...]] = {
    # -- the spool directory: sink and sidecar
    "AUDIT_S3_CLOSE_FAILED": (f"{_SINK}.test_close_failed",),  # injected
    "AUDIT_S3_CANNOT_CLOSE_METADATA_FILE_HANDLE": (f"{_SIDECAR}.test_close_failed",),  # injected
    "AUDIT_S3_FAILED_CREATING_METADATA_FILE": (f"{_SIDECAR}.test_creating_failed",),
    "AUDIT_S3_FAILED_WRITING_METADATA_FILE": (
        f"{_SIDECAR}.test_writing_failed",
        f"{_SIDECAR}.test_writing_failed_disk_full",  # injected
    ),
    "AUDIT_S3_FAILED_METADATA_JSON_ENCODING": (f"{_SIDECAR}.test_json_encoding_failed",),
    "AUDIT_S3_REMOVE_FAILED": (f"{_UPLOAD}.test_remove_failed",),  # injected
    # -- single uploads
    "AUDIT_S3_SINGLE_UPLOAD": (
        f"{_UPLOAD}.test_small_log_single_upload",
        f"{_REFUSED}.test_unknown_access_key",
    ),
    "AUDIT_S3_SINGLE_UPLOAD_COMPLETE": (
        f"{_UPLOAD}.test_small_log_single_upload",
        f"{_RECOVERY}.test_recovers_spooled_stream",
    ),
    "AUDIT_S3_SINGLE_UPLOAD_FAILED": (
        f"{_REFUSED}.test_unknown_access_key",
        f"{_REFUSED}.test_missing_bucket",
        f"{_OUTAGE}.test_single_upload_retried",
        f"{_TLS}.test_unknown_ca_refused_once",
    ),
    # -- multipart uploads
    "AUDIT_S3_MULTIPART_UPLOAD": (f"{_UPLOAD}.test_large_stream_uploads_parts_while_open",),
    "AUDIT_S3_MULTIPART_UPLOAD_INITIALIZATION_FAILED": (
        f"{_REFUSED}.test_wrong_secret_multipart",
        f"{_OUTAGE}.test_unreachable_during_writes_then_back",
    ),
    "AUDIT_S3_MULTIPART_PART_UPLOADING": (f"{_UPLOAD}.test_large_stream_uploads_parts_while_open",),
    "AUDIT_S3_MULTIPART_PART_UPLOAD_COMPLETE": (
        f"{_UPLOAD}.test_large_stream_uploads_parts_while_open",
        f"{_OUTAGE}.test_unreachable_during_writes_then_back",
    ),
    "AUDIT_S3_MULTIPART_PART_UPLOAD_FAILED": (
        f"{_OUTAGE}.test_unreachable_during_writes_then_back",
        f"{_REVOKED}.test_part_upload_refused",
    ),
    "AUDIT_S3_MULTIPART_UPLOAD_FINALIZING": (
        f"{_UPLOAD}.test_large_stream_uploads_parts_while_open",
        f"{_REVOKED}.test_finalization_refused",
    ),
    "AUDIT_S3_MULTIPART_UPLOAD_FINALIZED": (
        f"{_UPLOAD}.test_large_stream_uploads_parts_while_open",
        f"{_UPLOAD}.test_exact_multiple_of_part_size",
        f"{_RECOVERY}.test_recovers_large_stream_in_parts",
    ),
    "AUDIT_S3_MULTIPART_UPLOAD_FINALIZATION_FAILED": (f"{_REVOKED}.test_finalization_refused",),
    # -- recovery after a crash
    "AUDIT_S3_RECOVERING": (f"{_RECOVERY}.test_recovers_spooled_stream",),
    "AUDIT_S3_MULTIPART_ABORTING": (f"{_RECOVERY}.test_recovers_spooled_stream",),
    "AUDIT_S3_MULTIPART_FAILED_LIST": (
        f"{_RECOVERY_REFUSED}.test_failed_list",
        f"{_RECOVERY}.test_start_does_not_wait_for_s3",
    ),
    "AUDIT_S3_MULTIPART_FAILED_ABORT": (f"{_RECOVERY_REFUSED}.test_failed_abort",),
    "AUDIT_S3_FAILED_READING_METADATA_FILE": (
        f"{_RECOVERY}.test_missing_sidecar",
        f"{_RECOVERY}.test_corrupt_sidecar",
    ),
    "AUDIT_S3_NO_SUCH_QUEUE_ENTRY": (f"{_RECOVERY}.test_orphan_sidecar",),
    "AUDIT_S3_FAILED_STAT_QUEUE_ENTRY": (f"{_RECOVERY}.test_unreadable_entry",),
}


class AuditCodesCoverageTests(CodesCoverageMixin, SynchronousTestCase):
    prefix = "AUDIT_S3_"
    producers = PRODUCERS
