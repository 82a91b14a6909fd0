"""Tests for conch_container.webhook.protocol: the auth webhook's JSON documents."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from conch_container.metadata import AuthResult, ConnectionMetadata, FileValue, MetadataValue
from conch_container.webhook import protocol

CID = "0123456789abcdef0123456789abcdef"


def _metadata(**kwargs: object) -> ConnectionMetadata:
    base: dict[str, object] = {
        "connection_id": CID,
        "remote_address": "127.0.0.1:41234",
        "client_version": "SSH-2.0-OpenSSH_9.6",
        "username": "foo",
    }
    base.update(kwargs)
    return ConnectionMetadata(**base)  # type: ignore[arg-type]


class RequestTests(SynchronousTestCase):
    def test_password(self) -> None:
        """The password request is the pending metadata plus passwordBase64; empty maps omitted."""
        self.assertEqual(
            protocol.password_request(_metadata(), b"bar"),
            {
                "username": "foo",
                "remoteAddress": "127.0.0.1:41234",
                "connectionId": CID,
                "clientVersion": "SSH-2.0-OpenSSH_9.6",
                "passwordBase64": "YmFy",
            },
        )

    def test_public_key(self) -> None:
        """The pubkey request carries the key in authorized_keys form."""
        body = protocol.public_key_request(_metadata(), "ssh-ed25519 AAAAC3Nz\n")
        self.assertEqual(body["publicKey"], "ssh-ed25519 AAAAC3Nz")
        self.assertNotIn("passwordBase64", body)

    def test_maps(self) -> None:
        """metadata/environment are {value, sensitive}; files are base64."""
        body = protocol.password_request(
            _metadata(
                metadata={"team": MetadataValue("ops")},
                environment={"TOKEN": MetadataValue("x", sensitive=True)},
                files={"/etc/motd": FileValue(b"\x00hi", sensitive=False)},
            ),
            b"",
        )
        self.assertEqual(body["metadata"], {"team": {"value": "ops", "sensitive": False}})
        self.assertEqual(body["environment"], {"TOKEN": {"value": "x", "sensitive": True}})
        self.assertEqual(body["files"], {"/etc/motd": {"value": "AGhp", "sensitive": False}})
        self.assertEqual(body["passwordBase64"], "")

    def test_authz(self) -> None:
        """The authz request adds authenticatedUsername, only when set."""
        self.assertNotIn("authenticatedUsername", protocol.authz_request(_metadata()))
        body = protocol.authz_request(_metadata(authenticated_username="bar"))
        self.assertEqual(body["authenticatedUsername"], "bar")
        self.assertEqual(body["username"], "foo")


class ResponseTests(SynchronousTestCase):
    def test_minimal(self) -> None:
        """``{"success": false}`` is a refusal with nothing else."""
        self.assertEqual(protocol.decode_auth_response({"success": False}), AuthResult(False))

    def test_full(self) -> None:
        """All documented fields are decoded."""
        result = protocol.decode_auth_response(
            {
                "success": True,
                "authenticatedUsername": "bar",
                "metadata": {"k": {"value": "v", "sensitive": False}},
                "environment": {"VAR": {"value": "x", "sensitive": True}},
                "files": {"/home/u/.cfg": {"value": "aGVsbG8=", "sensitive": True}},
            }
        )
        self.assertEqual(
            result,
            AuthResult(
                success=True,
                authenticated_username="bar",
                metadata={"k": MetadataValue("v")},
                environment={"VAR": MetadataValue("x", True)},
                files={"/home/u/.cfg": FileValue(b"hello", True)},
            ),
        )

    def test_unknown_fields_accepted(self) -> None:
        """Fields the protocol does not define (and the echo fields) are ignored."""
        result = protocol.decode_auth_response(
            {
                "success": True,
                "username": "foo",
                "remoteAddress": "not an address",
                "connectionId": CID,
                "clientVersion": 7,
                "reason": "welcome",
                "metadata": {"k": {"value": "v", "extra": 1}},
            }
        )
        self.assertTrue(result.success)
        self.assertEqual(result.metadata, {"k": MetadataValue("v")})

    def test_nulls(self) -> None:
        """``null`` for an optional field counts as absent."""
        result = protocol.decode_auth_response(
            {"success": True, "authenticatedUsername": None, "metadata": None, "files": None}
        )
        self.assertEqual(result, AuthResult(True))

    def test_invalid(self) -> None:
        """Missing or mistyped documented fields are decode errors naming the field."""
        cases = [
            ([], "response"),
            ({}, "success"),
            ({"success": "true"}, "success"),
            ({"success": None}, "success"),
            ({"success": True, "authenticatedUsername": 1}, "authenticatedUsername"),
            ({"success": True, "metadata": []}, "metadata"),
            ({"success": True, "metadata": {"k": "v"}}, "metadata.k"),
            ({"success": True, "environment": {"k": {"value": 1}}}, "environment.k.value"),
            ({"success": True, "environment": {"k": {"sensitive": "no"}}}, "environment.k.sens"),
            ({"success": True, "files": {"/f": {"value": "***"}}}, "files./f.value"),
        ]
        for document, where in cases:
            with self.assertRaises(protocol.ProtocolError) as caught:
                protocol.decode_auth_response(document)
            self.assertTrue(str(caught.exception).startswith(where), (document, caught.exception))
