"""The JSON documents of ContainerSSH's authentication webhook (protocol 0.5).

Requests carry the connection metadata (``username``, ``remoteAddress``,
``connectionId``, ``clientVersion`` and, when not empty, ``metadata``,
``environment`` and ``files``) plus the credential; the authorization request
adds ``authenticatedUsername``. Every endpoint answers with::

    {"success": true, "authenticatedUsername": "...",
     "metadata": {...}, "environment": {...}, "files": {...}}

Decoding is strict about types (a wrong type is a decode failure, which the
caller retries, as ContainerSSH does) but, unlike ContainerSSH, tolerant of
fields it does not know: a newer or more talkative server keeps working. An
``environment`` entry that no program can be given is a decode failure too.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from conch_container.envnames import loggable_name, variable_problem
from conch_container.metadata import AuthResult, ConnectionMetadata, FileValue, MetadataValue

PASSWORD_PATH = "password"
PUBLIC_KEY_PATH = "pubkey"
AUTHZ_PATH = "authz"


class ProtocolError(ValueError):
    """A webhook answer does not have the documented shape; the message names the field."""


# ---------------------------------------------------------------------------
# Requests


def encode_values(values: Mapping[str, MetadataValue]) -> dict[str, dict[str, Any]]:
    """``metadata``/``environment`` as ``{name: {"value": ..., "sensitive": ...}}``."""
    return {name: {"value": v.value, "sensitive": v.sensitive} for name, v in values.items()}


def encode_files(files: Mapping[str, FileValue]) -> dict[str, dict[str, Any]]:
    """``files`` as ``{path: {"value": base64(content), "sensitive": ...}}``."""
    return {
        path: {"value": base64.b64encode(f.value).decode("ascii"), "sensitive": f.sensitive}
        for path, f in files.items()
    }


def pending_metadata(metadata: ConnectionMetadata) -> dict[str, Any]:
    """The fields every authentication request carries (``ConnectionAuthPendingMetadata``)."""
    body: dict[str, Any] = {
        "username": metadata.username,
        "remoteAddress": metadata.remote_address,
        "connectionId": metadata.connection_id,
        "clientVersion": metadata.client_version,
    }
    # Empty maps are left out, as Go's omitempty does.
    if metadata.metadata:
        body["metadata"] = encode_values(metadata.metadata)
    if metadata.environment:
        body["environment"] = encode_values(metadata.environment)
    if metadata.files:
        body["files"] = encode_files(metadata.files)
    return body


def authenticated_metadata(metadata: ConnectionMetadata) -> dict[str, Any]:
    """Pending metadata plus ``authenticatedUsername`` (left out when empty)."""
    body = pending_metadata(metadata)
    if metadata.authenticated_username:
        body["authenticatedUsername"] = metadata.authenticated_username
    return body


def password_request(metadata: ConnectionMetadata, password: bytes) -> dict[str, Any]:
    """The body of ``POST {url}/password``."""
    body = pending_metadata(metadata)
    body["passwordBase64"] = base64.b64encode(password).decode("ascii")
    return body


def public_key_request(metadata: ConnectionMetadata, public_key: str) -> dict[str, Any]:
    """The body of ``POST {url}/pubkey``; the key in authorized_keys form without comment."""
    body = pending_metadata(metadata)
    body["publicKey"] = public_key.strip()
    return body


def authz_request(metadata: ConnectionMetadata) -> dict[str, Any]:
    """The body of ``POST {url}/authz``."""
    return authenticated_metadata(metadata)


# ---------------------------------------------------------------------------
# Responses


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{where}: expected an object, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _string(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ProtocolError(f"{where}: expected a string, got {_json_type(value)}")
    return value


def _boolean(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ProtocolError(f"{where}: expected true or false, got {_json_type(value)}")
    return value


def _entries(value: Any, where: str) -> Mapping[str, Any]:
    return {} if value is None else _object(value, where)


def decode_values(value: Any, where: str) -> dict[str, MetadataValue]:
    """Decode a ``metadata``/``environment`` map (``null`` or absent is empty)."""
    result = {}
    for name, entry in _entries(value, where).items():
        item = _object(entry, f"{where}.{name}")
        result[name] = MetadataValue(
            _string(item.get("value"), f"{where}.{name}.value"),
            _boolean(item.get("sensitive"), f"{where}.{name}.sensitive"),
        )
    return result


def decode_environment(value: Any, where: str) -> dict[str, MetadataValue]:
    """Decode an ``environment`` map; every variable must be one a program can be given.

    A name that is not a portable name, or a value with a NUL (see
    :mod:`conch_container.envnames`), makes the whole answer malformed, the
    same as a value of the wrong type: the caller retries and in the end
    reports the authentication backend as failing. Dropping just that
    variable would start the user's programs in an environment the webhook
    never asked for (a name like ``LD_PRELOAD=/x.so:`` shows the webhook is
    broken or tampered with, not that one entry is optional), and the
    operator would only find out from a warning.
    """
    variables = decode_values(value, where)
    for name, entry in variables.items():
        why = variable_problem(name, entry.value)
        if why is not None:
            raise ProtocolError(f"{where}.{loggable_name(name)}: {why}")
    return variables


def decode_files(value: Any, where: str) -> dict[str, FileValue]:
    """Decode a ``files`` map; values are standard base64 as Go encodes ``[]byte``."""
    result = {}
    for path, entry in _entries(value, where).items():
        item = _object(entry, f"{where}.{path}")
        text = _string(item.get("value"), f"{where}.{path}.value")
        try:
            content = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError(f"{where}.{path}.value: not valid base64") from None
        sensitive = _boolean(item.get("sensitive"), f"{where}.{path}.sensitive")
        result[path] = FileValue(content, sensitive)
    return result


def decode_auth_response(document: Any) -> AuthResult:
    """Turn the JSON answer of ``/password``, ``/pubkey`` or ``/authz`` into an :class:`AuthResult`.

    ``success`` must be present and boolean; the other documented fields are
    optional (``null`` counts as absent); fields not documented are ignored.

    :raises ProtocolError: when a documented field has the wrong type.
    """
    body = _object(document, "response")
    if "success" not in body:
        raise ProtocolError("success: missing")
    if not isinstance(body["success"], bool):
        raise ProtocolError(f"success: expected true or false, got {_json_type(body['success'])}")
    return AuthResult(
        success=body["success"],
        authenticated_username=_string(body.get("authenticatedUsername"), "authenticatedUsername"),
        metadata=decode_values(body.get("metadata"), "metadata"),
        environment=decode_environment(body.get("environment"), "environment"),
        files=decode_files(body.get("files"), "files"),
    )
