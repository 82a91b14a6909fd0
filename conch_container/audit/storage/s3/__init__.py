"""The ``s3`` audit storage: streams spooled locally, uploaded to S3-compatible storage.

- :mod:`.storage`: :class:`S3Storage`, the storage and the service that uploads.
- :mod:`.spool`: the sink that writes the spool directory, and its scan after a crash.
- :mod:`.sidecar`: the metadata file beside each stream, and the object metadata.
- :mod:`.uploader`: shipping one stream (parts, retries).
- :mod:`.recovery`: what an earlier run left behind.
- :mod:`.client`: the blocking botocore calls, run on the storage's thread pool.
"""

from conch_container.audit.storage.s3.storage import S3Storage
from conch_container.audit.storage.s3.uploader import RetryPolicy

__all__ = ["RetryPolicy", "S3Storage"]
