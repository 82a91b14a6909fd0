"""Environment variable names end to end: real gateway, real containers, both Docker modes.

Two ways past the ``env`` settings are closed here: a deny list compares whole
names, so ``LD_PRELOAD=/lib/x.so:`` is not ``LD_PRELOAD`` to it, yet the Docker
engine, which splits ``NAME=value`` at the first ``=``, would set
``LD_PRELOAD``; and with ``forceCommand``, ``SSH_ORIGINAL_COMMAND=id #`` would
give a shell's forced command an "original command" the client chose.

The OpenSSH client splits ``SetEnv`` at the first ``=`` and so never sends a
name containing one: it sends what it can (the plain names, and names that
are not portable), and Conch's client, over real TCP, sends the names with
``=`` in them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.conch.ssh import keys
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.python.failure import Failure

from tests.integration.gateway import GatewayTestCase, reactor
from tests.integration.test_session_mode import SessionModeGatewayTestCase
from tests.ssh.harness import Client, ClientChannel, env_request, exec_request

DENY = {"env": {"mode": "enable", "deny": ["LD_PRELOAD", "PATH"]}}
FORCED = {"forceCommand": 'echo "original=[${SSH_ORIGINAL_COMMAND-unset}]"'}

if TYPE_CHECKING:
    _Base = GatewayTestCase
else:
    _Base = object


class RawClientMixin(_Base):
    """Conch's SSH client over TCP, for ``env`` requests OpenSSH cannot send."""

    async def run_raw(
        self, env: list[tuple[str, str]], request: bytes, data: bytes = b""
    ) -> tuple[list[str], ClientChannel]:
        """Send ``env`` requests, then ``request``; the replies to each and the finished channel."""
        client = Client("alice", [], [keys.Key.fromString(self.client_pem)])
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        await connectProtocol(endpoint, client.transport)
        conn = await client.authenticated.addTimeout(30, reactor)
        self.addCleanup(client.transport.loseConnection)
        channel = ClientChannel(conn=conn)
        conn.openChannel(channel)
        await channel.opened.addTimeout(30, reactor)
        replies = [await self._reply(channel.request(b"env", env_request(n, v))) for n, v in env]
        replies.append(await self._reply(channel.request(request, data)))
        await channel.closed_d.addTimeout(30, reactor)
        return replies, channel

    @staticmethod
    async def _reply(d: Deferred[Any]) -> str:
        result = await d.addBoth(lambda r: "failed" if isinstance(r, Failure) else "ok")
        return str(result)

    def env_refusals(self) -> list[Any]:
        return [r for r in self.log_records if r.code == "SECURITY_ENV_REJECTED"]


class DenyListChecks(RawClientMixin):
    """``env.deny: [LD_PRELOAD, PATH]``."""

    config_overrides = {"security": DENY}

    async def test_preload_with_equals_in_name_not_set(self) -> None:
        """The name ``LD_PRELOAD=/lib/x.so:`` is refused; the program sees no LD_PRELOAD."""
        replies, channel = await self.run_raw(
            [("LD_PRELOAD=/lib/x.so:", ""), ("OK", "yes")],
            b"exec",
            exec_request('echo "[${LD_PRELOAD-unset}] $OK"'),
        )
        self.assertEqual((channel.stdout, channel.exit_status), (b"[unset] yes\n", 0))
        self.assertEqual(replies, ["failed", "ok", "ok"])
        [refusal] = self.env_refusals()
        self.assertEqual(refusal.details["name"], "LD_PRELOAD")
        self.assertNotIn("/lib/x.so", repr(self.log_records))

    async def test_openssh_setenv_refused_names(self) -> None:
        """OpenSSH's ``SetEnv`` of a denied and a non-portable name: neither is set, both logged.

        ``/bin/env`` runs without a shell (a shell would drop a name it cannot
        use from what it passes on), so it prints the environment as the
        container got it.
        """
        out, err, code = await self.ssh(
            "/bin/env", "-o", "SetEnv=LD_PRELOAD=/lib/x.so:=v BAD.NAME=x OK=yes"
        )
        self.assertEqual(code, 0, err)
        names = [line.partition(b"=")[0] for line in out.splitlines()]
        self.assertIn(b"OK", names)
        self.assertNotIn(b"LD_PRELOAD", names)
        self.assertNotIn(b"BAD.NAME", names)
        names = sorted(r.details["name"] for r in self.env_refusals())
        self.assertEqual(names, ["BAD.NAME", "LD_PRELOAD"])
        self.assertNotIn("/lib/x.so", repr(self.log_records))


class ForceCommandChecks(RawClientMixin):
    """``forceCommand`` that prints the ``SSH_ORIGINAL_COMMAND`` it was given."""

    config_overrides = {"security": FORCED}

    async def test_original_command_with_equals_in_name_not_set(self) -> None:
        """``SSH_ORIGINAL_COMMAND=id #`` is refused; a shell's forced command sees no variable."""
        replies, channel = await self.run_raw([("SSH_ORIGINAL_COMMAND=id #", "x")], b"shell")
        self.assertEqual((channel.stdout, channel.exit_status), (b"original=[unset]\n", 0))
        self.assertEqual(replies, ["failed", "ok"])
        [refusal] = self.env_refusals()
        self.assertEqual(refusal.details["name"], "SSH_ORIGINAL_COMMAND")

    async def test_openssh_cannot_set_original_command(self) -> None:
        """OpenSSH's ``SetEnv=SSH_ORIGINAL_COMMAND=id``: refused for a shell and for an exec."""
        option = "SetEnv=SSH_ORIGINAL_COMMAND=id"
        out, err, code = await self.ssh(None, "-T", "-o", option)
        self.assertEqual((out, code), (b"original=[unset]\n", 0), err)
        out, err, code = await self.ssh("ls -l", "-o", option)
        self.assertEqual((out, code), (b"original=[ls -l]\n", 0), err)
        self.assertEqual(len(self.env_refusals()), 2)


class DenyListConnectionModeTests(DenyListChecks, GatewayTestCase):
    """The deny list in connection mode (one container, one exec per program)."""


class DenyListSessionModeTests(DenyListChecks, SessionModeGatewayTestCase):
    """The deny list in session mode (one container per program)."""


class ForceCommandConnectionModeTests(ForceCommandChecks, GatewayTestCase):
    """``forceCommand`` in connection mode."""


class ForceCommandSessionModeTests(ForceCommandChecks, SessionModeGatewayTestCase):
    """``forceCommand`` in session mode."""
