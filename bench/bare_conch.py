"""A minimal Twisted Conch SSH server: the floor the gateway's data path stands on.

It accepts one public key (for any user name), offers only aes128-ctr and
hmac-sha2-256, and runs each exec request as a local process with
``reactor.spawnProcess`` and Conch's own ``SSHSessionProcessProtocol``. The
one addition to the textbook server is flow control (reading from the process
stops while the client's window is full), which any real server needs and
which keeps memory bounded. Run as::

    python bench/bare_conch.py --host-key FILE --authorized-key FILE

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
from twisted.conch.ssh import factory, keys, session, transport
from twisted.cred import portal
from twisted.internet.interfaces import IReactorProcess, IReactorTCP
from twisted.internet.process import Process
from zope.interface import implementer


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


class BareTransport(transport.SSHServerTransport):
    """Only the cipher and MAC the benchmark compares every server with."""

    supportedCiphers = [b"aes128-ctr"]
    supportedMACs = [b"hmac-sha2-256"]


class BareFactory(factory.SSHFactory):
    """One host key, one accepted client key."""

    protocol = BareTransport

    def __init__(self, reactor: IReactorProcess, host_key: keys.Key, client_key: keys.Key) -> None:
        self.privateKeys = {host_key.sshType(): host_key}
        self.publicKeys = {host_key.sshType(): host_key.public()}
        self.portal = portal.Portal(BareRealm(reactor))
        self.portal.registerChecker(SSHPublicKeyChecker(OneKeyDB(client_key)))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host-key", required=True, help="private host key file")
    parser.add_argument("--authorized-key", required=True, help="the client's public key file")
    parser.add_argument("--port", type=int, default=0, help="loopback port (0: any free one)")
    args = parser.parse_args(argv)

    from twisted.internet import reactor

    ssh_factory = BareFactory(
        reactor, keys.Key.fromFile(args.host_key), keys.Key.fromFile(args.authorized_key)
    )
    tcp: IReactorTCP = reactor  # type: ignore[assignment]
    port = tcp.listenTCP(args.port, ssh_factory, interface="127.0.0.1")  # type: ignore[arg-type]
    print(f"listening on {port.getHost().port}", flush=True)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(sys.argv[1:])
