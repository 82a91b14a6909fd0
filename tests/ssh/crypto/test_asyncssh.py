"""Against a second implementation: AsyncSSH's packet encryption, both ways.

AsyncSSH implements every algorithm claimed here, independently (its own
framing code on ``cryptography``). Random keys, packet numbers and payloads:
what this project seals, AsyncSSH opens, and the other way round.
"""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from conch_container.ssh.crypto.suite import AEAD_CIPHERS, PacketProtection
from tests.ssh.crypto.support import COMBINATIONS, plain_packet

try:
    from asyncssh.encryption import get_encryption, get_encryption_params
except ImportError:  # pragma: no cover - a test dependency
    get_encryption = None  # type: ignore[assignment]


def _asyncssh(cipher: bytes, mac: bytes, key: bytes, iv: bytes, integrity: bytes) -> object:
    mac_name = b"" if cipher in AEAD_CIPHERS else mac
    key_size, iv_size, _, mac_key_size, _, etm = get_encryption_params(cipher, mac_name)
    return get_encryption(
        cipher, key[:key_size], iv[:iv_size], mac_name, integrity[:mac_key_size], etm
    )


def _ours(cipher: bytes, mac: bytes, key: bytes, iv: bytes, integrity: bytes) -> PacketProtection:
    protection = PacketProtection(cipher, cipher, mac, mac)
    protection.setKeys(iv, key, iv, key, integrity, integrity)
    return protection


class AsyncSSHTests(SynchronousTestCase):
    """This implementation and AsyncSSH agree on every claimed algorithm."""

    def setUp(self) -> None:
        if get_encryption is None:
            self.fail("asyncssh is a test dependency (setup.cfg, extras 'test')")

    @settings(max_examples=30, deadline=None)
    @given(
        combination=st.sampled_from(COMBINATIONS),
        sequence=st.integers(0, 0xFFFFFFFF),
        payload=st.binary(min_size=1, max_size=3000),
    )
    def test_both_ways(
        self, combination: tuple[bytes, bytes], sequence: int, payload: bytes
    ) -> None:
        """Sealed here, opened by AsyncSSH; sealed by AsyncSSH, opened here."""
        cipher, mac = combination
        key, iv, integrity = os.urandom(64), os.urandom(16), os.urandom(64)
        ours = _ours(cipher, mac, key, iv, integrity)
        # One AsyncSSH object per direction, as its connection has.
        receiving = _asyncssh(cipher, mac, key, iv, integrity)
        sending = _asyncssh(cipher, mac, key, iv, integrity)
        packet = plain_packet(payload, ours.sealer)

        wire = b"".join(ours.sealer.seal(sequence, packet))
        opened = _asyncssh_open(receiving, sequence, wire, ours.opener.head_size)
        self.assertEqual(opened, packet[4:])

        sent, tag = sending.encrypt_packet(sequence, packet[:4], packet[4:])  # type: ignore[attr-defined]
        length = ours.opener.packet_length(sequence, (sent + tag)[: ours.opener.head_size])
        self.assertEqual(length, len(packet) - 4)
        self.assertEqual(ours.opener.open(sequence, memoryview(sent + tag)), packet[4:])


def _asyncssh_open(encryption: object, sequence: int, wire: bytes, head_size: int) -> bytes:
    """AsyncSSH's receive path, as its connection runs it."""
    enc: object = encryption
    first, header = enc.decrypt_header(sequence, wire[:head_size], 4)  # type: ignore[attr-defined]
    length = int.from_bytes(header, "big")
    tag_size = len(wire) - 4 - length
    rest = wire[head_size : len(wire) - tag_size]
    plain = enc.decrypt_packet(sequence, first, rest, 4, wire[len(wire) - tag_size :])  # type: ignore[attr-defined]
    assert plain is not None, "AsyncSSH refused the packet"
    return bytes(plain)
