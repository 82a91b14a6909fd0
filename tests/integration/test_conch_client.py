"""The gateway end to end with Conch's own SSH client: the interactive terminal case.

ContainerSSH's conformance case 3: environment, a terminal of 80x25, a shell,
``tput cols``/``tput lines``, a window change to 120 columns, and ``exit``.
The OpenSSH client cannot be told to change its window size from a test, so
this drives the protocol directly with Conch's client over real TCP.
"""

from __future__ import annotations

from typing import Any

from twisted.conch.ssh import keys
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from tests.integration.gateway import GatewayTestCase, reactor
from tests.ssh.harness import (
    Client,
    ClientChannel,
    env_request,
    pty_request,
    window_change,
)


class OutputChannel(ClientChannel):
    """A client channel that can wait until its output contains a pattern."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waiting: list[tuple[bytes, int, Deferred[bytes]]] = []

    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        ready = [w for w in self._waiting if self.stdout.find(w[0], w[1]) >= 0]
        self._waiting = [w for w in self._waiting if w not in ready]
        for _, since, d in ready:
            d.callback(self.stdout[since:])

    def type(self, line: bytes, expect: bytes) -> Deferred[bytes]:
        """Send ``line``; fires with the output from now on once it contains ``expect``."""
        d: Deferred[bytes] = Deferred()
        self._waiting.append((expect, len(self.stdout), d))
        self.write(line)
        return d.addTimeout(30, reactor)


class InteractiveShellTests(GatewayTestCase):
    """An interactive shell on a terminal in a real container."""

    async def test_interactive_shell(self) -> None:
        """Conformance case 3: env, 80x25 terminal, resize to 120 columns, exit 0."""
        client = Client("alice", [], [keys.Key.fromString(self.client_pem)])
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        await connectProtocol(endpoint, client.transport)
        conn = await client.authenticated.addTimeout(30, reactor)
        self.addCleanup(client.transport.loseConnection)

        channel = OutputChannel(conn=conn)
        conn.openChannel(channel)
        await channel.opened
        await channel.request(b"env", env_request("foo", "bar"))
        await channel.request(b"pty-req", pty_request("xterm", 80, 25))
        await channel.request(b"shell")

        self.assertIn(b"80\r\n", await channel.type(b"tput cols\n", b"80\r\n"))
        self.assertIn(b"25\r\n", await channel.type(b"tput lines\n", b"25\r\n"))
        self.assertIn(b"bar\r\n", await channel.type(b'echo "$foo"\n', b"bar\r\n"))
        await channel.request(b"window-change", window_change(120, 25))
        self.assertIn(b"120\r\n", await channel.type(b"tput cols\n", b"120\r\n"))
        output = await channel.type(b'echo "Hello world!"\n', b"Hello world!\r\n")
        self.assertIn(b"Hello world!\r\n", output)
        channel.write(b"exit\n")
        await channel.closed_d.addTimeout(30, reactor)
        self.assertEqual(channel.exit_status, 0)
