"""What is known about a spooled stream: the sidecar file and the S3 object metadata.

Next to each spooled stream ``<local>/<connectionId>`` lies
``<local>/<connectionId>.metadata.json``, ContainerSSH's sidecar::

    {"startTime": 1700000000, "remoteAddr": "192.0.2.1", "authenticated": true,
     "username": "alice", "country": "XX"}

It is only read after a crash (the live upload keeps the same facts in
memory), so that the recovered object carries the right metadata. It is
replaced atomically, through ``<connectionId>.metadata.json.tmp`` and a
rename, so that a gateway killed half-way leaves the old sidecar or the new
one, never a torn one. A sidecar that cannot be written is logged and
otherwise ignored: the stream itself matters more, and it goes on.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from conch_container import messages
from conch_container.audit.storage import localfile
from conch_container.interfaces import AuditStreamInfo
from conch_container.log import CodeLogger

SIDECAR_SUFFIX = ".metadata.json"
TEMP_SUFFIX = ".tmp"
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC


def sidecar_path(local: str, connection_id: str) -> str:
    return os.path.join(local, connection_id + SIDECAR_SUFFIX)


def encode_sidecar(info: AuditStreamInfo) -> bytes:
    """The sidecar's bytes (UTF-8 JSON).

    :raises ValueError: when a text cannot be UTF-8 (a username holding a lone
        surrogate, as undecodable bytes become).
    """
    document = {
        "startTime": info.start_time,
        "remoteAddr": info.remote_addr,
        "authenticated": info.authenticated,
        "username": info.username or "",
        "country": info.country,
    }
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def decode_sidecar(data: bytes, connection_id: str) -> AuditStreamInfo:
    """Read a sidecar's bytes.

    :raises ValueError: when they are not a sidecar (not JSON, not an
        object, a field of the wrong type).
    """
    document: Any = json.loads(data.decode("utf-8"))
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    start = document.get("startTime")
    if isinstance(start, bool) or not isinstance(start, int):
        raise ValueError("startTime is not a whole number")
    texts = {key: document.get(key, "") for key in ("remoteAddr", "username", "country")}
    for key, value in texts.items():
        if not isinstance(value, str):
            raise ValueError(f"{key} is not a string")
    authenticated = document.get("authenticated", False)
    if not isinstance(authenticated, bool):
        raise ValueError("authenticated is not a boolean")
    return AuditStreamInfo(
        connection_id=connection_id,
        start_time=start,
        remote_addr=texts["remoteAddr"],
        country=texts["country"] or "XX",
        authenticated=authenticated,
        username=texts["username"] or None,
    )


def write_sidecar(local: str, info: AuditStreamInfo, log: CodeLogger) -> bool:
    """Replace the sidecar of ``info``'s stream; whether it was written.

    Blocking (the recorder's pool calls it). Every failure is logged under
    its code and swallowed.
    """
    path = sidecar_path(local, info.connection_id)
    temp = path + TEMP_SUFFIX
    try:
        data = encode_sidecar(info)
    except ValueError as error:
        log.event(
            messages.AUDIT_S3_FAILED_METADATA_JSON_ENCODING,
            "Cannot encode the metadata of the audit log: {reason}",
            reason=str(error),
        )
        return False
    try:
        fd = os.open(temp, _TEMP_FLAGS, localfile.FILE_MODE)
    except OSError as error:
        log.event(
            messages.AUDIT_S3_FAILED_CREATING_METADATA_FILE,
            "Cannot create the metadata file {file}: {reason}",
            file=temp,
            reason=str(error),
        )
        return False
    try:
        localfile.write_all(fd, data)
    except OSError as error:
        _close_quietly(fd, temp, log)
        log.event(
            messages.AUDIT_S3_FAILED_WRITING_METADATA_FILE,
            "Cannot write the metadata file {file}: {reason}",
            file=temp,
            reason=str(error),
        )
        return False
    if not _close_quietly(fd, temp, log):
        return False
    try:
        os.replace(temp, path)
    except OSError as error:
        log.event(
            messages.AUDIT_S3_FAILED_WRITING_METADATA_FILE,
            "Cannot put the metadata file {file} in place: {reason}",
            file=path,
            reason=str(error),
        )
        return False
    return True


def _close_quietly(fd: int, path: str, log: CodeLogger) -> bool:
    try:
        localfile.close_fd(fd)
    except OSError as error:
        log.event(
            messages.AUDIT_S3_CANNOT_CLOSE_METADATA_FILE_HANDLE,
            "Cannot close the metadata file {file}: {reason}",
            file=path,
            reason=str(error),
        )
        return False
    return True


def read_sidecar(local: str, connection_id: str) -> AuditStreamInfo:
    """Blocking read of a spooled stream's sidecar.

    :raises OSError: when it cannot be read (``FileNotFoundError`` when missing).
    :raises ValueError: when it is corrupt.
    """
    with open(sidecar_path(local, connection_id), "rb") as file:
        return decode_sidecar(file.read(), connection_id)


def object_metadata(info: AuditStreamInfo, *, username: bool, ip: bool) -> dict[str, str]:
    """The S3 object metadata of a stream, as ContainerSSH sets it.

    ``timestamp`` (start, Unix seconds), ``authenticated`` (``true`` or
    ``false``), ``country``; ``username`` (once known) when ``username``,
    ``ip`` when ``ip``.
    """
    metadata = {
        "timestamp": str(info.start_time),
        "authenticated": "true" if info.authenticated else "false",
        "country": header_value(info.country),
    }
    if username and info.username:
        metadata["username"] = header_value(info.username)
    if ip and info.remote_addr:
        metadata["ip"] = header_value(info.remote_addr)
    return metadata


def header_value(text: str) -> str:
    """``text`` as an HTTP header value S3 stores as metadata.

    Metadata travels in ``x-amz-meta-*`` headers, which take printable
    US-ASCII only (botocore refuses anything else, and a username may be any
    text): other text is sent as an RFC 2047 encoded word,
    ``=?UTF-8?B?...?=``, the form S3 itself returns non-ASCII metadata in.
    """
    if text.isascii() and text.isprintable():
        return text
    raw = text.encode("utf-8", errors="backslashreplace")
    return "=?UTF-8?B?" + base64.b64encode(raw).decode("ascii") + "?="
