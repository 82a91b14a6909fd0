"""Reading the gateway's webhook requests: the server side of ``webhook.protocol``.

The gateway's client writes these bodies (``pending_metadata``,
``password_request``, ``public_key_request``, ``authz_request`` there); this
module reads them back strictly. A body that is not what the protocol
documents is a :class:`BadRequest`, which the server answers with 400: a
test server that shrugged off a malformed request would hide the bug it
exists to find.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from conch_container.metadata import ConnectionMetadata
from conch_container.webhook.protocol import (
    ProtocolError,
    decode_environment,
    decode_files,
    decode_values,
)

__all__ = ["BadRequest", "connection_metadata", "password_of", "public_key_of"]


class BadRequest(ValueError):
    """The request body is not what the protocol documents; the message names the field."""


def _string(body: Mapping[str, Any], key: str, *, required: bool) -> str:
    value = body.get(key)
    if value is None:
        if required:
            raise BadRequest(f"{key}: missing")
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{key}: expected a string")
    return value


def connection_metadata(body: Any) -> ConnectionMetadata:
    """The connection a request is about (pending or authenticated metadata).

    :raises BadRequest: when ``body`` is not an object, ``username``,
        ``remoteAddress`` or ``connectionId`` is missing, or a field has the
        wrong type.
    """
    if not isinstance(body, dict):
        raise BadRequest("the request body is not a JSON object")
    try:
        return ConnectionMetadata(
            connection_id=_string(body, "connectionId", required=True),
            remote_address=_string(body, "remoteAddress", required=True),
            client_version=_string(body, "clientVersion", required=False),
            username=_string(body, "username", required=True),
            authenticated_username=_string(body, "authenticatedUsername", required=False),
            metadata=decode_values(body.get("metadata"), "metadata"),
            environment=decode_environment(body.get("environment"), "environment"),
            files=decode_files(body.get("files"), "files"),
        )
    except ProtocolError as error:
        raise BadRequest(str(error)) from None


def password_of(body: Mapping[str, Any]) -> bytes:
    """The password of a ``/password`` request (``passwordBase64``).

    :raises BadRequest: when it is missing or not standard base64.
    """
    encoded = _string(body, "passwordBase64", required=True)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("passwordBase64: not valid base64") from None


def public_key_of(body: Mapping[str, Any]) -> str:
    """The key of a ``/pubkey`` request (``publicKey``, authorized_keys form).

    :raises BadRequest: when it is missing or empty.
    """
    key = _string(body, "publicKey", required=True).strip()
    if not key:
        raise BadRequest("publicKey: empty")
    return key
