"""The message model: ContainerSSH's types, names, payload fields and JSON form."""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from conch_container.audit.message import (
    TYPES,
    AuditMessage,
    Kind,
    MessageType,
    message_to_json,
    payload_fields,
    type_id,
    type_name,
)


class TypeTableTests(SynchronousTestCase):
    def test_every_type_described(self) -> None:
        """Every MessageType has an id, a name and a payload description, and nothing else does."""
        self.assertEqual(set(TYPES), set(MessageType))
        self.assertEqual(len({info.id for info in TYPES.values()}), len(TYPES))
        self.assertEqual(len({info.name for info in TYPES.values()}), len(TYPES))

    def test_containerssh_ids_and_names(self) -> None:
        """Ids and names are ContainerSSH's, 409's included."""
        self.assertEqual(type_id(MessageType.CONNECT), "connect")
        self.assertEqual(type_id(MessageType.AUTH_PASSWORD_SUCCESSFUL), "auth_password_successful")
        self.assertEqual(type_id(MessageType.X11), "x11-req")
        self.assertEqual(type_id(MessageType.NEW_CHANNEL_DIRECT_TCPIP), "new_channel_direct_tcpip")
        self.assertEqual(type_name(MessageType.CONNECT), "Connect")
        self.assertEqual(
            type_name(MessageType.AUTH_PASSWORD_SUCCESSFUL), "Password authentication successful"
        )
        self.assertEqual(type_name(MessageType.EXEC), "Execute program")
        self.assertEqual(type_name(MessageType.IO), "I/O")
        self.assertEqual(type_name(MessageType.REQUEST_FAILED), "Request failed")

    def test_handshake_types_named(self) -> None:
        """198 and 199, which ContainerSSH leaves unnamed, get ids and names of their own."""
        self.assertEqual(type_id(198), "handshake_failed")
        self.assertEqual(type_name(199), "Handshake successful")

    def test_unknown_type(self) -> None:
        """A type this code does not know is called ``invalid``, as ContainerSSH does."""
        self.assertEqual((type_id(7777), type_name(7777)), ("invalid", "invalid"))
        self.assertIsNone(payload_fields(7777))

    def test_go_field_names(self) -> None:
        """Payload structs without JSON tags keep Go's field names."""
        names = [f.name for f in payload_fields(MessageType.AUTH_KEYBOARD_INTERACTIVE_FAILED) or ()]
        self.assertEqual(names, ["Username"])
        names = [f.name for f in payload_fields(MessageType.FORWARD_TCPIP) or ()]
        self.assertEqual(names, ["BindHost", "BindPort"])

    def test_field_kinds(self) -> None:
        """Byte fields are bytes, and the keyboard-interactive lists describe their items."""
        pty = {f.name: f.kind for f in payload_fields(MessageType.PTY) or ()}
        self.assertEqual(pty["modelist"], Kind.BYTES)
        self.assertEqual(pty["columns"], Kind.UINT32)
        (questions,) = [
            f
            for f in payload_fields(MessageType.AUTH_KEYBOARD_INTERACTIVE_CHALLENGE) or ()
            if f.kind is Kind.LIST
        ]
        self.assertEqual(
            [(f.name, f.kind) for f in questions.items],
            [("question", Kind.TEXT), ("echo", Kind.BOOL)],
        )

    def test_no_payload_types(self) -> None:
        """Disconnect, close-write and close carry no payload."""
        for t in (MessageType.DISCONNECT, MessageType.CLOSE_WRITE, MessageType.CLOSE):
            self.assertIsNone(payload_fields(t))


class JsonTests(SynchronousTestCase):
    def test_decoder_line(self) -> None:
        """The keys and values containerssh-auditlog-decoder prints, bytes as base64."""
        message = AuditMessage(
            connection_id="abc",
            timestamp=1625081015047410200,
            type=MessageType.IO,
            payload={"stream": 1, "data": b"hi\n"},
            channel_id=3,
        )
        value = message_to_json(message)
        self.assertEqual(
            list(value),
            ["connectionId", "timestamp", "type", "typeId", "typeName", "payload", "channelId"],
        )
        self.assertEqual(
            json.dumps(value, separators=(",", ":")),
            '{"connectionId":"abc","timestamp":1625081015047410200,"type":500,"typeId":"io",'
            '"typeName":"I/O","payload":{"stream":1,"data":"aGkK"},"channelId":3}',
        )

    def test_zero_values_and_order(self) -> None:
        """Missing fields get Go's zero values; fields come in the Go struct's order."""
        message = AuditMessage("c", 1, MessageType.PTY, {"modelist": b"", "term": "xterm"}, 0)
        self.assertEqual(
            message_to_json(message)["payload"],
            {
                "requestId": 0,
                "term": "xterm",
                "columns": 0,
                "rows": 0,
                "width": 0,
                "height": 0,
                "modelist": "",
            },
        )
        self.assertEqual(list(message_to_json(message)["payload"])[:2], ["requestId", "term"])

    def test_no_payload(self) -> None:
        """A type without payload prints ``null``, as does the connection-level channel id."""
        value = message_to_json(AuditMessage("c", 1, MessageType.DISCONNECT))
        self.assertIsNone(value["payload"])
        self.assertIsNone(value["channelId"])

    def test_unknown_kept(self) -> None:
        """Unknown types and fields are printed, not dropped."""
        value = message_to_json(AuditMessage("c", 1, 7777, {"new": b"\x00", "n": 5}))
        self.assertEqual(value["payload"], {"new": "AA==", "n": 5})
        value = message_to_json(AuditMessage("c", 1, MessageType.EXIT, {"exitStatus": 2, "x": 1}))
        self.assertEqual(value["payload"], {"exitStatus": 2, "x": 1})

    def test_nested_lists(self) -> None:
        """Keyboard-interactive questions are objects with their own fields."""
        message = AuditMessage(
            "c",
            1,
            MessageType.AUTH_KEYBOARD_INTERACTIVE_CHALLENGE,
            {"username": "u", "instruction": "", "questions": [{"question": "Code?"}]},
        )
        self.assertEqual(
            message_to_json(message)["payload"]["questions"], [{"question": "Code?", "echo": False}]
        )
