"""The reactor transports that carry syslog lines: a link per kind of destination.

A link is opened by :func:`open_link` and used from the reactor thread only.
Its :meth:`~Link.send` never waits: it accepts a line, or says the
destination is busy (and calls :meth:`LinkOwner.link_writable` once it may be
tried again), or raises :class:`LinkBroken`. A link that breaks on its own
(the daemon went away) calls :meth:`LinkOwner.link_lost`.

* UDP: a datagram port bound to an ephemeral port and connected to the
  server's address, resolved through the reactor's name resolver.
* A Unix stream socket: one line per message, each ending in a newline; the
  link is the transport's streaming producer, so Twisted's write buffer stays
  bounded by pausing it.
* A Unix datagram socket: one datagram per message.

A datagram socket whose buffer is full refuses a line at once (UDP raises
``EAGAIN``; Twisted's connected Unix datagram port drops the datagram and
returns nothing instead of the byte count); the link then polls until the
destination takes lines again.
"""

from __future__ import annotations

import errno
from typing import Any, Protocol

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHostResolution,
    IPushProducer,
    IResolutionReceiver,
)
from twisted.internet.protocol import (
    ConnectedDatagramProtocol,
    DatagramProtocol,
    Factory,
    connectionDone,
)
from twisted.internet.protocol import Protocol as StreamProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from conch_container.log.syslogdestination import Destination, UDPDestination

#: How long resolving a syslog server's name may take.
RESOLVE_TIMEOUT = 10.0

#: How long connecting to a Unix stream socket may take.
CONNECT_TIMEOUT = 5.0

#: How long a closing stream link may take to hand its buffer to the daemon.
CLOSE_TIMEOUT = 5.0

#: How soon a datagram socket whose buffer was full is tried again.
BUSY_POLL_INTERVAL = 0.1

# The errors of a datagram send that mean "the socket buffer is full".
_BUSY_ERRNOS = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS})


class LinkBroken(Exception):
    """The link cannot carry lines any more; open another."""


class LinkOwner(Protocol):
    """What a link tells about itself, in the reactor thread."""

    def link_writable(self) -> None:
        """A link that refused a line as busy may be tried again."""

    def link_lost(self, link: Link, reason: str) -> None:
        """``link`` broke (the daemon closed it or refused a datagram)."""


class Link(Protocol):
    """An open transport to the syslog daemon."""

    #: True once the link carried a line: a link that breaks after that is
    #: worth reopening at once, one that never carried any is not.
    carried_lines: bool

    def send(self, line: bytes) -> bool:
        """Hand ``line`` (one message, unframed) to the transport.

        :returns: False when the destination is busy; the line was not taken.
        :raises LinkBroken: when the link is dead.
        :raises twisted.internet.error.MessageLengthError: for a line too big
            for one datagram.
        """

    def close(self) -> Deferred[None]:
        """Close the transport; fires once it is gone."""


async def open_link(reactor: Any, destination: Destination, owner: LinkOwner) -> Link:
    """Open a link to ``destination``.

    :param reactor: provides ``IReactorUDP``, ``IReactorUNIX``,
        ``IReactorUNIXDatagram``, ``IReactorTime`` and
        ``IReactorPluggableNameResolver``.
    :raises Exception: why no link could be opened (a resolution, connection
        or bind error).
    """
    if isinstance(destination, UDPDestination):
        host = await resolve(reactor, destination.host, destination.port)
        return _open_udp(reactor, host, destination.port, owner)
    try:
        return await _open_unix_stream(reactor, destination.path, owner)
    except ConnectError:
        # Not a stream socket (or nobody accepts on it): /dev/log is
        # usually a datagram socket.
        return _open_unix_datagram(reactor, destination.path, owner)


def resolve(reactor: Any, host: str, port: int) -> Deferred[str]:
    """The first address of ``host`` (an address is its own), through the reactor's resolver.

    :raises OSError: (as the Deferred's failure) for a name without an address.
    :raises twisted.internet.defer.TimeoutError: when resolving takes longer
        than :data:`RESOLVE_TIMEOUT`.
    """
    if isIPAddress(host) or isIPv6Address(host):
        return succeed(host)
    receiver = _FirstAddress(host)
    reactor.nameResolver.resolveHostName(
        receiver, host, port, addressTypes=(IPv4Address, IPv6Address), transportSemantics="UDP"
    )
    return receiver.result.addTimeout(RESOLVE_TIMEOUT, reactor)


@implementer(IResolutionReceiver)
class _FirstAddress:
    def __init__(self, host: str) -> None:
        self._host = host
        self._addresses: list[str] = []
        self.result: Deferred[str] = Deferred()

    def resolutionBegan(self, resolutionInProgress: IHostResolution) -> None:
        pass

    def addressResolved(self, address: IAddress) -> None:
        if isinstance(address, IPv4Address | IPv6Address):
            self._addresses.append(address.host)

    def resolutionComplete(self) -> None:
        # The result may have timed out already; the resolver cannot be stopped.
        if self.result.called:
            return
        if self._addresses:
            self.result.callback(self._addresses[0])
        else:
            self.result.errback(OSError(f"no address for {self._host!r}"))


class _DatagramSending:
    """What both datagram links share: a line is one datagram, taken or refused at once."""

    # No "Starting protocol" events: at debug level they would be sent
    # through the very link they are about, at every reconnection.
    noisy = False

    def __init__(self, owner: LinkOwner, clock: Any) -> None:
        self._owner = owner
        self._clock = clock
        self._sending = False
        self._refused = False
        self._closing = False
        self._poll: IDelayedCall | None = None
        self.carried_lines = False
        self.failure: Failure | None = None

    def _port(self) -> Any:
        raise NotImplementedError

    def send(self, line: bytes) -> bool:
        self._sending = True
        try:
            written = self._port().write(line)
        except OSError as e:
            if e.errno in _BUSY_ERRNOS:
                self._poll_later()
                return False
            raise LinkBroken(str(e)) from e
        finally:
            self._sending = False
        if self._refused:
            raise LinkBroken("the daemon refused the line (connection refused)")
        if written is None:
            # Twisted's Unix datagram port swallows EAGAIN and returns nothing.
            self._poll_later()
            return False
        self.carried_lines = True
        return True

    def _poll_later(self) -> None:
        if self._poll is None or not self._poll.active():
            self._poll = self._clock.callLater(BUSY_POLL_INTERVAL, self._owner.link_writable)

    def connectionRefused(self) -> None:
        # During a send it is that send's failure; otherwise an ICMP answer
        # to an earlier datagram: nobody listens there any more.
        self._refused = True
        if not self._sending and not self._closing:
            self._owner.link_lost(self, "connection refused")

    def stopProtocol(self) -> None:
        # The port closed without being asked (the reactor shutting down).
        if not self._closing:
            self._owner.link_lost(self, "the socket was closed")

    def close(self) -> Deferred[None]:
        self._closing = True
        if self._poll is not None and self._poll.active():
            self._poll.cancel()
        port = self._port()
        if port is None:
            return succeed(None)
        return maybeDeferred(port.stopListening).addCallback(lambda _: None)


# A syslog server does not answer: both links ignore what they receive.


class _UDPLink(_DatagramSending, DatagramProtocol):
    def _port(self) -> Any:
        return self.transport


class _UnixDatagramLink(_DatagramSending, ConnectedDatagramProtocol):
    def _port(self) -> Any:
        return self.transport

    def connectionFailed(self, failure: Failure) -> None:
        self.failure = failure


def _open_udp(reactor: Any, host: str, port: int, owner: LinkOwner) -> Link:
    link = _UDPLink(owner, reactor)
    listening = reactor.listenUDP(0, link, interface="::" if isIPv6Address(host) else "")
    try:
        listening.connect(host, port)
    except BaseException:
        link.close()
        raise
    return link


def _open_unix_datagram(reactor: Any, path: str, owner: LinkOwner) -> Link:
    link = _UnixDatagramLink(owner, reactor)
    reactor.connectUNIXDatagram(path, link)
    if link.failure is not None:
        link.failure.raiseException()
    return link


@implementer(IPushProducer)
class _UnixStreamLink(StreamProtocol):
    """Newline-terminated lines on a Unix stream socket."""

    def __init__(self, owner: LinkOwner, clock: Any) -> None:
        self._owner = owner
        self._clock = clock
        self._paused = False
        self._closing = False
        self._gone: Deferred[None] = Deferred()
        self.carried_lines = False

    def connectionMade(self) -> None:
        # As a streaming producer the link is paused when Twisted's buffer
        # for the socket is full, so lines wait in the bounded queue instead.
        self._stream().registerProducer(self, True)

    def _stream(self) -> Any:
        # A Unix client transport: ITransport, IConsumer and abortConnection.
        return self.transport

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._owner.link_writable()

    def stopProducing(self) -> None:
        self._paused = True

    def dataReceived(self, data: bytes) -> None:
        # A syslog daemon does not answer.
        pass

    def send(self, line: bytes) -> bool:
        if self._paused:
            return False
        if self._closing:
            raise LinkBroken("the connection is closing")
        self._stream().write(line + b"\n")
        self.carried_lines = True
        return True

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self._closing:
            self._owner.link_lost(self, reason.getErrorMessage())
        self._gone.callback(None)

    def close(self) -> Deferred[None]:
        if not self._closing:
            self._closing = True
            transport = self._stream()
            transport.unregisterProducer()
            transport.loseConnection()
            # A daemon that stopped reading would keep the buffer forever.
            deadline = self._clock.callLater(CLOSE_TIMEOUT, transport.abortConnection)
            self._gone.addBoth(lambda result: deadline.cancel() if deadline.active() else None)
        gone: Deferred[None] = Deferred()
        self._gone.addBoth(lambda _: gone.callback(None))
        return gone


async def _open_unix_stream(reactor: Any, path: str, owner: LinkOwner) -> Link:
    endpoint = UNIXClientEndpoint(reactor, path, timeout=CONNECT_TIMEOUT)
    factory = Factory.forProtocol(lambda: _UnixStreamLink(owner, reactor))
    factory.noisy = False
    link: _UnixStreamLink = await endpoint.connect(factory)
    return link


__all__ = ["Link", "LinkBroken", "LinkOwner", "open_link", "resolve"]
