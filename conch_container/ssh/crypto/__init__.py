"""Packet protection for the SSH transport: ciphers, MACs and how they frame a packet.

Conch frames every packet one way (RFC 4253: the whole packet encrypted, the
MAC over the plaintext). OpenSSH's modern algorithms frame it differently:
the ``-etm`` MACs leave the length in clear and authenticate the ciphertext,
AES-GCM leaves the length in clear as associated data, and
ChaCha20-Poly1305 encrypts the length with a key of its own. Each direction of
a connection therefore gets a *sealer* (outgoing) and an *opener* (incoming)
that know their framing; :mod:`~conch_container.ssh.crypto.suite` picks them
by the negotiated names.
"""
