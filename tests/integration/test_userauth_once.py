"""A logged-in client cannot log in a second time on its connection (real Docker).

The client asks for ``ssh-userauth`` again after its login and tries a
second login: the gateway disconnects it, and the container of the first
login is removed when the connection ends, without waiting for the
gateway's shutdown.
"""

from __future__ import annotations

from typing import Any

from twisted.conch.ssh import common, keys, transport, userauth
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from conch_container.backend.docker.containerconfig import LABEL_INSTANCE
from tests.integration.gateway import GatewayTestCase, reactor
from tests.ssh.harness import Client


class UserauthOnceTests(GatewayTestCase):
    """``ssh-userauth`` requested again after login, against the real gateway."""

    async def containers(self) -> list[Any]:
        found: list[Any] = await deferToThread(
            self.docker.containers,
            all=True,
            filters={"label": f"{LABEL_INSTANCE}={self.instance_id}"},
        )
        return found

    async def connections_torn_down(self) -> None:
        """Wait until every connection is closed and its teardown has finished."""
        await self.root.getServiceNamed("ssh")._factory.wait_closed()
        registry = self.root.getServiceNamed("sessions")
        while registry.pending:
            await deferLater(reactor, 0.1, lambda: None)

    async def test_second_login_refused_and_first_container_removed(self) -> None:
        """The second userauth ends the connection; the first login's container goes with it."""
        client = Client("alice", [], [keys.Key.fromString(self.client_pem)])
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        await connectProtocol(endpoint, client.transport)
        self.addCleanup(client.transport.loseConnection)
        await client.authenticated.addTimeout(30, reactor)
        self.assertEqual(len(await self.containers()), 1)

        client.transport.sendPacket(transport.MSG_SERVICE_REQUEST, common.NS(b"ssh-userauth"))
        client.transport.sendPacket(
            userauth.MSG_USERAUTH_REQUEST,
            common.NS(b"alice")
            + common.NS(b"ssh-connection")
            + common.NS(b"password")
            + b"\x00"
            + common.NS(b"wonderland"),
        )
        await client.lost.addTimeout(30, reactor)
        self.assertEqual(
            client.disconnect_reason,
            (transport.DISCONNECT_PROTOCOL_ERROR, "a service was already started"),
        )

        await self.connections_torn_down()
        self.assertEqual(await self.containers(), [])
        codes = self.logged_codes()
        self.assertIn("SSH_SERVICE_REQUEST_REFUSED", codes)
        self.assertEqual(codes.count("SSH_HANDSHAKE_SUCCESSFUL"), 1)
