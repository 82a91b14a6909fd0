"""The forwarding helper's packet codec, checked against an independent CBOR
implementation (cbor2) in both directions."""

from __future__ import annotations

import cbor2
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.forwardprotocol import (
    MAX_PAYLOAD,
    ConnectionType,
    Packet,
    PacketDecoder,
    PacketType,
    ProtocolError,
    decode_map,
    encode_packet,
    new_connection_payload,
    setup_payload,
)


def decoded(*chunks: bytes) -> list[Packet]:
    packets: list[Packet] = []
    decoder = PacketDecoder(packets.append)
    for chunk in chunks:
        decoder.feed(chunk)
    return packets


class EncodeTests(SynchronousTestCase):
    def test_packet_as_containerssh_writes_it(self) -> None:
        """Three keys in Go's field order; an empty payload is null."""
        for payload in (b"", b"x", b"y" * 70000):
            for connection_id in (0, 23, 24, 255, 256, 65536, 2**32, 2**63):
                data = encode_packet(PacketType.DATA, connection_id, payload)
                value = cbor2.loads(data)
                self.assertEqual(list(value), ["Type", "ConnectionId", "Payload"])
                self.assertEqual(value["Type"], 3)
                self.assertEqual(value["ConnectionId"], connection_id)
                self.assertEqual(value["Payload"], payload or None)
                # The shortest form, as Go's encoder writes it.
                self.assertEqual(data, cbor2.dumps(value))

    def test_setup_payload(self) -> None:
        value = cbor2.loads(
            setup_payload(ConnectionType.PORT_FORWARD, bind_host="::1", bind_port=8080)
        )
        self.assertEqual(
            value,
            {
                "ConnectionType": 1,
                "BindHost": "::1",
                "BindPort": 8080,
                "Protocol": "tcp",
                "Screen": "",
                "SingleConnection": False,
                "AuthProtocol": "",
                "AuthCookie": "",
            },
        )

    def test_new_connection_payload(self) -> None:
        value = cbor2.loads(new_connection_payload("tcp", "héllo", 80, "10.0.0.1", 5000))
        self.assertEqual(
            value,
            {
                "Protocol": "tcp",
                "ConnectedAddress": "héllo",
                "ConnectedPort": 80,
                "OriginatorAddress": "10.0.0.1",
                "OriginatorPort": 5000,
            },
        )


class DecodeTests(SynchronousTestCase):
    def test_what_cbor2_writes(self) -> None:
        """Keys in any order, unknown keys, null or missing payload, wide integers."""
        stream = cbor2.dumps({"Payload": b"abc", "Extra": "x", "ConnectionId": 7, "Type": 3})
        stream += cbor2.dumps({"Type": 1, "ConnectionId": 0, "Payload": None})
        stream += cbor2.dumps({"Type": 5, "ConnectionId": 2**40})
        self.assertEqual(
            decoded(stream),
            [Packet(3, 7, b"abc"), Packet(1, 0, b""), Packet(5, 2**40, b"")],
        )

    def test_split_anywhere(self) -> None:
        """A packet may arrive a byte at a time."""
        stream = encode_packet(3, 1, b"hello" * 100) + encode_packet(7, 1)
        self.assertEqual(
            decoded(*(stream[i : i + 1] for i in range(len(stream)))),
            [Packet(3, 1, b"hello" * 100), Packet(7, 1, b"")],
        )

    def test_many_in_one_chunk(self) -> None:
        stream = b"".join(encode_packet(3, 1, bytes([i])) for i in range(100))
        self.assertEqual([p.payload for p in decoded(stream)], [bytes([i]) for i in range(100)])

    def test_refused(self) -> None:
        """What is no packet stream raises, before anything large is buffered."""
        for garbage in (
            b"usage: containerssh-agent ...\n",
            cbor2.dumps([1, 2, 3]),
            cbor2.dumps({"Type": 3, "Payload": "text, not bytes"}),
            cbor2.dumps({"Type": -1}),
            b"\xbf\x64Type\x03\xff",  # an indefinite-length map
            cbor2.dumps({"Type": 3, "Payload": {"nested": {"deeper": 1}}}),
            b"\xa1\x64Type\x5b" + (MAX_PAYLOAD + 1).to_bytes(8, "big"),
        ):
            with self.assertRaises(ProtocolError, msg=garbage[:40]):
                decoded(garbage)

    def test_decode_map(self) -> None:
        self.assertEqual(decode_map(cbor2.dumps({"BindPort": 4242})), {"BindPort": 4242})
        for bad in (b"", cbor2.dumps(5), cbor2.dumps({"a": 1}) + b"\x00"):
            with self.assertRaises(ProtocolError):
                decode_map(bad)
