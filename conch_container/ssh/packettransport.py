"""Conch's server transport with this project's packet path.

Conch's ``getPacket``/``sendPacket`` frame every packet as RFC 4253 does
(encrypt all, MAC the plaintext) with its own ``SSHCiphers``; this class
replaces both, and the cipher state behind ``currentEncryptions`` and
``nextEncryptions``, with :mod:`conch_container.ssh.crypto`, which adds the
encrypt-then-MAC and AEAD framings OpenSSH's modern algorithms use. It also
implements OpenSSH's strict key exchange (``kex-strict-*-v00@openssh.com``),
which closes the Terrapin prefix-truncation attack (CVE-2023-48795) on the
chacha20-poly1305 and -etm framings. The rest
of Conch (version exchange, key exchange, key derivation, message dispatch)
is unchanged: it still negotiates the names, derives the keys and calls
``setKeys``; it just gets a :class:`~conch_container.ssh.crypto.suite.PacketProtection`
where it expects an ``SSHCiphers``.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from twisted.conch.ssh import transport as conch_transport
from twisted.conch.ssh.common import getNS

from conch_container.ssh.crypto.base import SEQUENCE_MASK
from conch_container.ssh.crypto.codec import PacketReader, frame
from conch_container.ssh.crypto.errors import PacketError
from conch_container.ssh.crypto.suite import PacketProtection, unprotected


def _protection(value: Any) -> PacketProtection:
    """Conch's ``SSHCiphers`` (names only, not keyed yet) as a :class:`PacketProtection`."""
    if isinstance(value, PacketProtection):
        return value
    return PacketProtection(value.outCipType, value.inCipType, value.outMACType, value.inMACType)


#: The pseudo key exchange names that announce strict key exchange
#: (OpenSSH PROTOCOL, "transport: strict key exchange extension"): listed in
#: the first KEXINIT only, never chosen as a method.
STRICT_KEX_CLIENT = b"kex-strict-c-v00@openssh.com"
STRICT_KEX_SERVER = b"kex-strict-s-v00@openssh.com"

#: What a peer may send during the initial strict key exchange: KEXINIT,
#: NEWKEYS, the key exchange method's own messages (30-49) and, as OpenSSH
#: always processes it, DISCONNECT. Everything else (IGNORE, DEBUG and
#: UNIMPLEMENTED included) ends the connection.
_INITIAL_KEX_MESSAGES = frozenset(
    {conch_transport.MSG_DISCONNECT, conch_transport.MSG_KEXINIT, conch_transport.MSG_NEWKEYS}
    | set(range(30, 50))
)

if TYPE_CHECKING:
    _TransportBase = conch_transport.SSHTransportBase
else:
    _TransportBase = object


class PacketPath(_TransportBase):
    """The packet path, for a subclass of one of Conch's transports (it comes first in the bases).

    The server is what the gateway runs; a client transport with this path
    lets tests run both ends with the new algorithms in memory.

    :ivar packet_error: why the last incoming packet was refused, if one was;
        from then on nothing more is read.
    :ivar strict_kex: True when both ends announced strict key exchange in
        their first KEXINIT. Then the peer's KEXINIT must be its first packet,
        nothing outside the key exchange may arrive before its first NEWKEYS,
        and each direction's sequence number restarts at 0 after every NEWKEYS
        in it, so a packet inserted or deleted by a man in the middle during
        the handshake can no longer go unnoticed.

    :ivar rekey_after_bytes: once this many bytes went one way under the same
        keys, this side starts a new key exchange; 0: never.
    """

    packet_error: PacketError | None = None
    rekey_after_bytes = 0
    _bytes_in = 0
    _bytes_out = 0
    strict_kex = False
    #: True until the peer's first NEWKEYS arrived.
    _initial_kex = True
    _reader: PacketReader | None = None
    _current: PacketProtection | None = None
    _next: PacketProtection | None = None

    # Conch assigns SSHCiphers objects to these two: they become
    # PacketProtection on the way in. ``nextEncryptions`` is assigned during
    # KEXINIT, before Conch checks the negotiation (a None name); the
    # conversion keeps the names, so that check works as before.
    @property  # type: ignore[override]
    def currentEncryptions(self) -> PacketProtection:
        if self._current is None:
            self._current = unprotected()
        return self._current

    @currentEncryptions.setter
    def currentEncryptions(self, value: Any) -> None:
        self._current = _protection(value)

    @property  # type: ignore[override]
    def nextEncryptions(self) -> PacketProtection:
        assert self._next is not None, "no key exchange in progress"
        return self._next

    @nextEncryptions.setter
    def nextEncryptions(self, value: Any) -> None:
        self._next = _protection(value)

    def dataReceived(self, data: bytes) -> None:
        """Buffer ``data`` and dispatch every whole packet in it.

        Until the peer's version line arrived, Conch's own parsing runs
        (it calls :meth:`getPacket`, which takes over what follows the line).
        """
        if self.packet_error is not None:
            return
        if not self.gotVersion:
            super().dataReceived(data)
            return
        self._packet_reader().feed(data)
        packet = self.getPacket()
        while packet is not None:
            self.dispatchMessage(packet[0], packet[1:])
            if self.transport is None or self.packet_error is not None:
                return
            packet = self.getPacket()

    def sendKexInit(self) -> None:
        """Send KEXINIT, announcing strict key exchange in the first one only.

        The pseudo-algorithm is added for the one message: the offer Conch
        negotiates against never holds it, so it can never be chosen.
        """
        offer = self.supportedKeyExchanges
        if self._initial_kex and self.sessionID is None:
            ours = STRICT_KEX_CLIENT if self.isClient else STRICT_KEX_SERVER
            self.supportedKeyExchanges = [*offer, ours]
        try:
            super().sendKexInit()
        finally:
            self.supportedKeyExchanges = offer

    def ssh_KEXINIT(self, packet: bytes) -> None:
        """Turn strict mode on if the peer's first KEXINIT announces it, then negotiate."""
        if self._initial_kex and self.sessionID is None and not self.strict_kex:
            theirs = STRICT_KEX_SERVER if self.isClient else STRICT_KEX_CLIENT
            if theirs in _kex_names(packet):
                self.strict_kex = True
                # getPacket already counted the KEXINIT: it was packet 0.
                if self.incomingPacketSequence != 1:
                    self._strict_violation("KEXINIT was not the first packet")
                    return
        super().ssh_KEXINIT(packet)
        if self.kexAlg in (STRICT_KEX_CLIENT, STRICT_KEX_SERVER) and self.transport is not None:
            # Not reachable with Conch's negotiation (the names are not in
            # the offer); kept so a change there cannot make one a method.
            self.sendDisconnect(
                conch_transport.DISCONNECT_KEY_EXCHANGE_FAILED, b"couldn't match all kex parts"
            )

    def dispatchMessage(self, messageNum: int, payload: bytes) -> None:
        """Enforce the strict key exchange rules, then dispatch as Conch does."""
        if self.strict_kex:
            if self._initial_kex and messageNum not in _INITIAL_KEX_MESSAGES:
                self._strict_violation(f"unexpected message type {messageNum} during key exchange")
                return
            if messageNum == conch_transport.MSG_NEWKEYS:
                self.incomingPacketSequence = 0
        if messageNum == conch_transport.MSG_NEWKEYS:
            self._initial_kex = False
        super().dispatchMessage(messageNum, payload)

    def _strict_violation(self, description: str) -> None:
        error = PacketError(
            conch_transport.DISCONNECT_PROTOCOL_ERROR, f"strict KEX violation: {description}"
        )
        self.packet_error = error
        self.packet_refused(error)
        self.sendDisconnect(error.reason, error.description.encode("ascii", "replace"))

    def _packet_reader(self) -> PacketReader:
        if self._reader is None:
            self._reader = PacketReader()
        return self._reader

    def getPacket(self) -> bytes | None:
        """The next whole, verified, decrypted payload, or None until one is here.

        A packet that fails the checks (length, padding, MAC or tag) ends the
        connection with the matching disconnect reason.
        """
        reader = self._packet_reader()
        if self.buf:
            # What followed the version line, left by Conch's parsing.
            reader.feed(self.buf)
            self.buf = b""
        if self.packet_error is not None:
            return None
        try:
            payload = reader.next_payload(
                self.currentEncryptions.opener, self.incomingPacketSequence
            )
        except PacketError as error:
            self.packet_error = error
            self.packet_refused(error)
            self.sendDisconnect(error.reason, error.description.encode("ascii", "replace"))
            return None
        if payload is None:
            return None
        if self.incomingCompression:
            try:
                payload = self.incomingCompression.decompress(payload)
            except Exception:
                self._log.failure("Error decompressing payload")
                self.sendDisconnect(
                    conch_transport.DISCONNECT_COMPRESSION_ERROR, b"compression error"
                )
                return None
        self.incomingPacketSequence = (self.incomingPacketSequence + 1) & SEQUENCE_MASK
        self._bytes_in += len(payload)
        self._rekey_if_due()
        return payload

    def packet_refused(self, error: PacketError) -> None:
        """Called when an incoming packet is refused, before the disconnect is sent."""

    def sendPacket(self, messageType: int, payload: bytes) -> None:
        """Frame, protect and send one message.

        During a key exchange, messages that do not belong to it wait, as in
        Conch, until the new keys are in use.
        """
        if self._keyExchangeState != self._KEY_EXCHANGE_NONE:
            if not self._allowedKeyExchangeMessageType(messageType):
                self._blockedByKeyExchange.append((messageType, payload))
                return
        message = bytes((messageType,))
        if self.outgoingCompression:
            payload = self.outgoingCompression.compress(
                message + payload
            ) + self.outgoingCompression.flush(2)
            message = b""
        sealer = self.currentEncryptions.sealer
        sequence = self.outgoingPacketSequence
        assert self.transport is not None
        self.transport.writeSequence(sealer.seal(sequence, frame(message, payload, sealer)))
        self.outgoingPacketSequence = (sequence + 1) & SEQUENCE_MASK
        if self.strict_kex and messageType == conch_transport.MSG_NEWKEYS:
            self.outgoingPacketSequence = 0
        self._bytes_out += len(payload)
        if messageType != conch_transport.MSG_KEXINIT:
            # Conch marks a key exchange as under way only after sending
            # its KEXINIT: a check now would send a second one.
            self._rekey_if_due()

    def _rekey_if_due(self) -> None:
        """Start a key exchange once :attr:`rekey_after_bytes` went one way under the same keys."""
        limit = self.rekey_after_bytes
        if limit <= 0 or max(self._bytes_in, self._bytes_out) < limit:
            return
        self.rekey("volume")

    def rekey(self, reason: str = "requested") -> None:
        """Start a new key exchange now, unless one is under way or the first is not done.

        :param reason: why, for :meth:`rekey_started`: ``"volume"`` when
            :attr:`rekey_after_bytes` went one way, or what the caller says.
        """
        if (
            self._keyExchangeState != self._KEY_EXCHANGE_NONE
            or self.sessionID is None
            or self.transport is None
            or self.packet_error is not None
        ):
            return
        sent, received = self._bytes_out, self._bytes_in
        # Before sending: KEXINIT goes through sendPacket, which checks again.
        self._bytes_in = self._bytes_out = 0
        self.sendKexInit()
        self.rekey_started(reason, sent, received)

    def rekey_started(self, reason: str, sent: int, received: int) -> None:
        """Called when this side started a new key exchange, with the payload bytes
        sent and received under the keys it replaces."""

    def _newKeys(self) -> None:
        """The new keys are in use: count the volume under them from zero."""
        self._bytes_in = self._bytes_out = 0
        super()._newKeys()


def _kex_names(packet: bytes) -> list[bytes]:
    """The key exchange names in a KEXINIT payload (after the message number), or none."""
    try:
        names, _ = getNS(packet[16:])
    except (struct.error, IndexError):
        return []
    return names.split(b",")


class PacketServerTransport(PacketPath, conch_transport.SSHServerTransport):
    """An ``SSHServerTransport`` whose packets are framed and protected by this project."""
