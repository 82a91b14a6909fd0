"""One user flooding a session with signals and window changes, while another logs in.

The whole gateway on the real reactor, real containers in the local Docker
engine, the backend's real pool (counting its work:
:mod:`tests.backend.countingpool`), and the guest agent delivering signals.
The flooding client is Conch's, over TCP (it can send ``signal`` requests and
does not wait for replies); the other user is the OpenSSH client.

What must hold: the other user's login and command complete normally; the
flood never has more than one resize and one signal delivery on the pool at a
time, and nothing ever waits for a pool thread; a client that keeps more
requests unanswered than the per-connection bound is disconnected. The
other user's login time is printed (``login during flood: ...``), not asserted.
"""

from __future__ import annotations

from typing import Any

from twisted.conch.ssh import common, keys
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from conch_container.testing.webhook import WebhookUser
from tests.backend.countingpool import CountingThreadPool, counting_pools, function_name
from tests.docker_support import GUEST_IMAGE
from tests.integration.gateway import GatewayTestCase, public_line, reactor
from tests.ssh.harness import Client, ClientChannel, exec_request, pty_request, window_change

#: How many of each request the flood sends.
FLOOD = 5000
#: The program under the flood: it ignores INT, so the signals do not end it.
STUBBORN_PROGRAM = "trap '' INT; exec /bin/sleep 100000"


def call_kind(func: Any, args: tuple[Any, ...]) -> str:
    """A pool call's function name; a signal delivery's also names the signal.

    Closing a channel delivers ``KILL`` to its program (with the guest agent),
    besides any signal the client asked for: that one is not part of the flood.
    """
    name = function_name(func, args)
    if name == "thd_exec_detached":
        cmd = args[-1]
        return f"{name} {cmd[-1]}"
    return name


class RequestFloodTests(GatewayTestCase):
    """A session flooded with ``signal`` and ``window-change`` requests."""

    timeout = 300

    def setUp(self) -> Any:
        self.pools = counting_pools(self, call_kind)
        d = super().setUp()
        self.webhook.users["bob"] = WebhookUser(authorized_keys=[public_line(self.client_pem)])
        return d

    def config_data(self) -> dict[str, Any]:
        data = super().config_data()
        data["docker"] = {
            "execution": {
                "container": {"image": GUEST_IMAGE},
                "imagePullPolicy": "Never",
                "shellCommand": ["/bin/sh"],
            },
        }
        return data

    @property
    def pool(self) -> CountingThreadPool:
        [pool] = self.pools
        return pool

    async def flooded_channel(self) -> tuple[Client, ClientChannel]:
        """alice's client with the stubborn program running on a terminal."""
        client = Client("alice", [], [keys.Key.fromString(self.client_pem)])
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        await connectProtocol(endpoint, client.transport)
        conn = await client.authenticated.addTimeout(30, reactor)
        self.addCleanup(client.transport.loseConnection)
        channel = ClientChannel(conn=conn)
        conn.openChannel(channel)
        await channel.opened
        await channel.request(b"pty-req", pty_request("xterm", 80, 25))
        await channel.request(b"exec", exec_request(STUBBORN_PROGRAM))
        # One signal that is waited for: the agent's handshake is done, signals work.
        await channel.request(b"signal", common.NS(b"INT")).addTimeout(30, reactor)
        return client, channel

    def flood(self, channel: ClientChannel, want_reply: bool) -> list[Deferred[Any]]:
        """Send FLOOD signals and FLOOD window changes, interleaved, without waiting."""
        replies: list[Deferred[Any]] = []
        for i in range(FLOOD):
            for name, data in (
                (b"signal", common.NS(b"INT")),
                (b"window-change", window_change(80 + i % 50, 24 + i % 10)),
            ):
                d = channel.request(name, data, want_reply=want_reply)
                if d is not None:
                    replies.append(d.addErrback(lambda _: None))
        return replies

    async def other_user_runs_a_command(self) -> float:
        """bob logs in with OpenSSH and runs a command; returns how long it took."""
        started = reactor.seconds()
        out, err, code = await self.ssh("echo bob was here", user="bob")
        elapsed = float(reactor.seconds() - started)
        self.assertEqual((out, code), (b"bob was here\n", 0), err)
        return elapsed

    def assert_pool_never_queued(self) -> None:
        """One resize and one signal delivery at a time; no call ever waited for a thread."""
        self.assertEqual(self.pool.most("thd_exec_resize"), 1)
        self.assertEqual(self.pool.most("thd_exec_detached INT"), 1)
        self.assertLessEqual(self.pool.most(), self.pool.max)

    async def test_flood_without_replies(self) -> None:
        """Replies not wanted: the flooding client stays, the other user gets in normally."""
        client, channel = await self.flooded_channel()
        other = Deferred.fromCoroutine(self.other_user_runs_a_command())
        self.flood(channel, want_reply=False)
        elapsed = await other
        print(f"login during flood: bob's login and command took {elapsed:.2f} s")
        # The flooding connection is still served: a request sent after the flood is answered.
        await channel.request(b"window-change", window_change(132, 43)).addTimeout(120, reactor)
        self.assertIsNone(client.disconnect_reason)
        self.assert_pool_never_queued()
        self.assertNotIn("SSH_CHANNEL_REQUESTS_FLOOD", self.logged_codes())

    async def test_flood_with_replies(self) -> None:
        """Replies wanted: the flooding client is disconnected, the other user gets in normally."""
        client, channel = await self.flooded_channel()
        other = Deferred.fromCoroutine(self.other_user_runs_a_command())
        self.flood(channel, want_reply=True)
        await client.lost.addTimeout(60, reactor)
        elapsed = await other
        print(f"login during flood with replies: bob's login and command took {elapsed:.2f} s")
        self.assertEqual(client.disconnect_reason, (11, "too many unanswered requests"))
        self.assertIn("SSH_CHANNEL_REQUESTS_FLOOD", self.logged_codes())
        self.assert_pool_never_queued()
        # And after the flood, too.
        await self.other_user_runs_a_command()
