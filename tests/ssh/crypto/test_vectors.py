"""Known answers: the exact bytes on the wire for fixed keys, for every framing.

The expected bytes were produced by AsyncSSH's implementation of each
algorithm (``asyncssh.encryption.get_encryption``), an implementation
independent of this one, from the keys in :mod:`tests.ssh.crypto.support`
(each truncated to the algorithm's key, IV and MAC key size) and the packet
:data:`PAYLOAD` padded with ``a0 a1 a2 ...``. Each algorithm seals the same
packet twice, as packet numbers 3 and then 2**32 - 1, on one sealer: the
second answer also checks that the cipher state (CTR counter, GCM invocation
counter) carries over from one packet to the next.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.ssh.crypto.support import keyed, open_wire, plain_packet

PAYLOAD = b"\x5eHello, SSH!"

VECTORS: tuple[tuple[bytes, bytes, tuple[tuple[int, str], ...]], ...] = (
    (
        b"chacha20-poly1305@openssh.com",
        b"hmac-sha2-256",
        (
            (
                0x3,
                (
                    "fb1a92928b1b54de5e26cb5da81caf429a4737e1c478e9616775f6ed7cf38d3f"
                    "54ea7db7b809e27d0ad9dce4"
                ),
            ),
            (
                0xFFFFFFFF,
                (
                    "b90ee4a802cc44fec268bbceb665f8fa5326a30cb51e9cb0688772d283ff0fbf"
                    "bb8282036a74306b060d1b71"
                ),
            ),
        ),
    ),
    (
        b"aes128-gcm@openssh.com",
        b"hmac-sha2-256",
        (
            (
                0x3,
                (
                    "00000020093c06c0b76ed7d6bb6d0458a76a8a4e932cdd59350174f05fc31c39"
                    "134246419d49c7db78f13a6d3760a9f34a55017a"
                ),
            ),
            (
                0xFFFFFFFF,
                (
                    "000000207d263b7eda2d76d95da1ee16195b2c159643af2ee1cbb289a121a64a"
                    "1ac80254a1f006cf7cf73d29073e3b87de4cfd6f"
                ),
            ),
        ),
    ),
    (
        b"aes256-gcm@openssh.com",
        b"hmac-sha2-256",
        (
            (
                0x3,
                (
                    "000000205b459603158539b21e310ca0fbc5cb5fe166a3ac2cc45ad80c7d01e6"
                    "541314faa63def3f82883308f74379ae4db11831"
                ),
            ),
            (
                0xFFFFFFFF,
                (
                    "00000020f0450273f002b56b52b24ba80d9fc151c1f82f98c6c5f8fdb07cbfe9"
                    "585cb41740184c5e809754bbe2abda8c28387cce"
                ),
            ),
        ),
    ),
    (
        b"aes128-ctr",
        b"hmac-sha2-256-etm@openssh.com",
        (
            (
                0x3,
                (
                    "000000208de126f9d17081542d5446c0b0452539cf2bc561f9884973801d99a6"
                    "cf490ee8aa611d31f109d446d7a6633142ff29b9474453783d2ebed270493577"
                    "6e974385"
                ),
            ),
            (
                0xFFFFFFFF,
                (
                    "00000020100427b4bc9a04496b85742f7d5dc4ecf568186f2be1956a68eb6d4d"
                    "18b27632b914d6b1ef153a3e5049b4bd4f2f27a9a820296d8040e0b383f03f5a"
                    "eb6338ae"
                ),
            ),
        ),
    ),
    (
        b"aes256-ctr",
        b"hmac-sha2-512-etm@openssh.com",
        (
            (
                0x3,
                (
                    "0000002080865945da4cd4615edeece3c71f317e164d2ea3a77bbc72d9da39f4"
                    "353c502095ac6f167dc98555ce5006930e843f8eda3337ac9f1856e68c99c22b"
                    "cc678f6e5ef11f4f404a0b737bf45f8782b02c52f8b2f7c0709e5f4c6c17c2b9"
                    "1d49dfd7"
                ),
            ),
            (
                0xFFFFFFFF,
                (
                    "00000020d39fd234bac5c274820debc74b2624ad9fe1ff7dbd19d2bdead45e04"
                    "58d39a566e0c20590dc1f68d0f4ca8311a492c7240a3a9076f4910934b3efb34"
                    "f90a30c4325531c6ca354944822fca3c58deddb159d7d1e7bc81ee9410026c74"
                    "780baf4a"
                ),
            ),
        ),
    ),
    (
        b"aes128-ctr",
        b"hmac-sha2-256",
        (
            (
                0x3,
                (
                    "9ebf6e80b242a61d616b7aa4b1b6d7d34d2fc165fd84457f8c199da2cb5512f4"
                    "f53cea271c1ecfbf6f237ea1dd65839327e5750c6711242c904a56c89d9d771e"
                ),
            ),
            (
                0xFFFFFFFF,
                (
                    "035a6fcddfa8230027ba484b7cae3606776c1c6b2fed996664ef69491cae6a2e"
                    "b797f3f5c9d77996292334863ed4184b2e1df830e5b9e1ace894af819bb28660"
                ),
            ),
        ),
    ),
)


class KnownAnswerTests(SynchronousTestCase):
    """Each algorithm's output is AsyncSSH's, byte for byte, and opens back."""

    def test_seal(self) -> None:
        """Sealing the packet gives the expected wire bytes."""
        for cipher, mac, answers in VECTORS:
            sealer, _ = keyed(cipher, mac)
            packet = plain_packet(PAYLOAD, sealer)
            for sequence, wire in answers:
                with self.subTest(cipher=cipher, mac=mac, sequence=sequence):
                    sealed = b"".join(sealer.seal(sequence, packet))
                    self.assertEqual(sealed.hex(), wire)

    def test_open(self) -> None:
        """Opening the expected wire bytes gives the packet back."""
        for cipher, mac, answers in VECTORS:
            sealer, opener = keyed(cipher, mac)
            packet = plain_packet(PAYLOAD, sealer)
            for sequence, wire in answers:
                with self.subTest(cipher=cipher, mac=mac, sequence=sequence):
                    opened = open_wire(opener, sequence, bytes.fromhex(wire))
                    self.assertEqual(opened, packet[4:])
