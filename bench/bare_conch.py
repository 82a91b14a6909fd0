"""A minimal Twisted Conch SSH server: the floor the gateway's data path stands on.

It accepts one public key (for any user name), offers only the cipher and MAC
it is given, on the project's packet path (so that it speaks the same modern
algorithms as the gateway and OpenSSH), and runs each exec request as a local
process with ``reactor.spawnProcess`` and Conch's own
``SSHSessionProcessProtocol``. The one addition to the textbook server is
flow control (reading from the process stops while the client's window is
full), which any real server needs and which keeps memory bounded. Run as::

    python bench/bare_conch.py --host-key FILE --authorized-key FILE \
        --cipher aes128-gcm@openssh.com --mac hmac-sha2-256-etm@openssh.com

It listens on a free loopback port, prints ``listening on PORT`` and serves
until SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from twisted.conch.avatar import ConchUser
from twisted.conch.checkers import IAuthorizedKeysDB, SSHPublicKeyChecker
from twisted.conch.interfaces import IConchUser, ISession
from twisted.conch.ssh import factory, keys, session
from twisted.cred import portal
from twisted.internet.error import ProcessDone
from twisted.internet.interfaces import IReactorProcess, IReactorTCP, IReactorTime
from twisted.internet.process import Process
from twisted.python.failure import Failure
from zope.interface import implementer

from conch_container.ssh.packettransport import PacketServerTransport


@implementer(IAuthorizedKeysDB)
class OneKeyDB:
    """An ``IAuthorizedKeysDB`` that knows one key and grants it to every user name."""

    def __init__(self, key: keys.Key) -> None:
        self._key = key

    def getAuthorizedKeys(self, username: bytes) -> list[keys.Key]:
        return [self._key]


class FlowControlledSession(session.SSHSession):
    """``SSHSession`` that pauses the process while the client's window is full."""

    def _process(self) -> Process | None:
        return getattr(self.client, "transport", None)

    def stopWriting(self) -> None:
        process = self._process()
        if process is not None:
            process.pauseProducing()

    def startWriting(self) -> None:
        process = self._process()
        if process is not None:
            process.resumeProducing()


class InProcessProgram:
    """Stands in for a process, as ``SSHSessionProcessProtocol``'s transport, without one.

    ``transport-zeros N`` sends N MiB of zeros and ``transport-discard`` reads
    stdin to its end: what the transport alone carries, with no process's
    pipe and no container engine behind it. It pauses and resumes as a
    process does when the client's window fills and empties.
    """

    _CHUNK = memoryview(bytes(256 * 1024))

    def __init__(
        self, reactor: IReactorTime, proto: session.SSHSessionProcessProtocol, send: int
    ) -> None:
        self._reactor = reactor
        self._scheduled = False
        self._proto = proto
        self._remaining = send
        self._paused = False
        self._ended = False
        self.pid: int | None = None

    def start(self) -> None:
        self._proto.makeConnection(self)  # type: ignore[arg-type]
        if self._remaining:
            self.resumeProducing()

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        # Conch resumes before it sends what it buffered: the next output
        # would only join that buffer. Send once the reactor is back.
        self._paused = False
        if not self._scheduled:
            self._scheduled = True
            self._reactor.callLater(0, self._send)

    def _send(self) -> None:
        """Send until the client's window is full."""
        self._scheduled = False
        while not self._paused and self._remaining:
            n = min(self._remaining, len(self._CHUNK))
            self._remaining -= n
            self._proto.outReceived(bytes(self._CHUNK[:n]))
        if not self._remaining:
            self._end()

    def write(self, data: bytes) -> None:
        """Stdin from the client: discarded."""

    def closeStdin(self) -> None:
        # The end of stdin ends the sink; the source ends when all is sent.
        if not self._remaining:
            self._end()

    def signalProcess(self, signal: str) -> None:
        self._end()

    def loseConnection(self) -> None:
        """The channel closes: nothing more to send."""
        self._remaining = 0
        self._ended = True

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._proto.processEnded(Failure(ProcessDone(0)))


@implementer(ISession)
class ProcessSession:
    """Runs the exec command with ``/bin/sh -c``, as sshd does; no shell, no pty."""

    def __init__(self, reactor: IReactorProcess) -> None:
        self._reactor = reactor
        self._process: Process | None = None

    def getPty(self, term: bytes, windowSize: Any, modes: Any) -> None:
        raise NotImplementedError("no pty in the bare server")

    def openShell(self, proto: session.SSHSessionProcessProtocol) -> None:
        raise NotImplementedError("no shell in the bare server")

    def execCommand(self, proto: session.SSHSessionProcessProtocol, command: bytes) -> None:
        if command.startswith((b"transport-zeros ", b"transport-discard")):
            words = command.split()
            size = int(words[1]) << 20 if len(words) > 1 else 0
            program = InProcessProgram(self._reactor, proto, size)  # type: ignore[arg-type]
            self._process = program  # type: ignore[assignment]
            program.start()
            return
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        self._process = self._reactor.spawnProcess(  # type: ignore[assignment]
            proto, "/bin/sh", ["/bin/sh", "-c", command], env
        )

    def windowChanged(self, newWindowSize: Any) -> None:
        pass

    def eofReceived(self) -> None:
        if self._process is not None:
            self._process.closeStdin()

    def closed(self) -> None:
        if self._process is not None and self._process.pid is not None:
            self._process.signalProcess("KILL")


class BareUser(ConchUser):
    """An avatar whose session channels get a fresh ``ProcessSession`` each."""

    def __init__(self, reactor: IReactorProcess) -> None:
        super().__init__()
        self._reactor = reactor
        self.channelLookup[b"session"] = FlowControlledSession

    def __conform__(self, interface: Any) -> Any:
        # One session object per channel, without a global adapter registry.
        if interface is ISession:
            return ProcessSession(self._reactor)
        return None


@implementer(portal.IRealm)
class BareRealm:
    """Every authenticated user gets a ``BareUser``; logging out needs no work."""

    def __init__(self, reactor: IReactorProcess) -> None:
        self._reactor = reactor

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        return IConchUser, BareUser(self._reactor), lambda: None


class BareTransport(PacketServerTransport):
    """Conch's server transport on the project's packet path: the one the gateway
    runs, without its policies. The factory sets the one cipher and MAC offered."""


class BareFactory(factory.SSHFactory):
    """One host key, one accepted client key."""

    protocol = BareTransport

    def __init__(
        self,
        reactor: IReactorProcess,
        host_key: keys.Key,
        client_key: keys.Key,
        cipher: bytes,
        mac: bytes,
    ) -> None:
        self._cipher = cipher
        self._mac = mac
        self.privateKeys = {host_key.sshType(): host_key}
        self.publicKeys = {host_key.sshType(): host_key.public()}
        self.portal = portal.Portal(BareRealm(reactor))
        self.portal.registerChecker(SSHPublicKeyChecker(OneKeyDB(client_key)))

    def buildProtocol(self, addr: Any) -> BareTransport:
        t: BareTransport = super().buildProtocol(addr)
        t.supportedCiphers = [self._cipher]
        t.supportedMACs = [self._mac]
        return t


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host-key", required=True, help="private host key file")
    parser.add_argument("--authorized-key", required=True, help="the client's public key file")
    parser.add_argument("--port", type=int, default=0, help="loopback port (0: any free one)")
    parser.add_argument("--cipher", required=True, help="the one cipher offered")
    parser.add_argument("--mac", required=True, help="the one MAC offered")
    args = parser.parse_args(argv)

    from twisted.internet import reactor

    ssh_factory = BareFactory(
        reactor,
        keys.Key.fromFile(args.host_key),
        keys.Key.fromFile(args.authorized_key),
        args.cipher.encode(),
        args.mac.encode(),
    )
    tcp: IReactorTCP = reactor  # type: ignore[assignment]
    port = tcp.listenTCP(args.port, ssh_factory, interface="127.0.0.1")  # type: ignore[arg-type]
    print(f"listening on {port.getHost().port}", flush=True)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(sys.argv[1:])
