"""Security policies end to end: the real OpenSSH and sftp clients, real containers.

Each class runs a gateway with its own ``security`` section; the policy sits
in front of the Docker backend exactly as ``twistd containerssh`` assembles it.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from twisted.conch.error import ConchError
from twisted.conch.ssh import connection, keys
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.utils import getProcessOutputAndValue

from tests.integration.gateway import GatewayTestCase, reactor
from tests.ssh.harness import Client, ClientChannel, exec_request

SFTP = shutil.which("sftp")
SCRIPT = shutil.which("script")


class EnvPolicyTests(GatewayTestCase):
    """``env.deny``: a denied variable never reaches the container; others do."""

    config_overrides = {"security": {"env": {"mode": "enable", "deny": ["DENIED"]}}}

    async def test_denied_variable_not_set(self) -> None:
        """``SetEnv`` of a denied and an allowed variable: only the allowed one is set."""
        out, err, code = await self.ssh(
            'echo "${DENIED-unset} ${ALLOWED-unset}"', "-o", "SetEnv=DENIED=secret ALLOWED=yes"
        )
        self.assertEqual((out, code), (b"unset yes\n", 0), err)
        self.assertIn("SECURITY_ENV_REJECTED", self.logged_codes())
        records = [r for r in self.log_records if r.code == "SECURITY_ENV_REJECTED"]
        self.assertNotIn("secret", repr(records))


class CommandFilterTests(GatewayTestCase):
    """``command.mode: filter``: exactly the listed command runs."""

    config_overrides = {"security": {"command": {"mode": "filter", "allow": ["echo allowed"]}}}

    async def test_listed_command_runs(self) -> None:
        """The listed command runs and exits 0."""
        out, err, code = await self.ssh("echo allowed")
        self.assertEqual((out, code), (b"allowed\n", 0), err)

    async def test_other_command_refused(self) -> None:
        """Any other command is refused: OpenSSH reports the failed exec and exits 255."""
        out, err, code = await self.ssh("echo allowed; id", "-o", "LogLevel=INFO")
        self.assertEqual((out, code), (b"", 255), err)
        self.assertIn(b"exec request failed", err)
        codes = self.logged_codes()
        self.assertIn("SECURITY_EXEC_REJECTED", codes)
        self.assertNotIn("DOCKER_EXEC", codes)


class ForceCommandTests(GatewayTestCase):
    """``forceCommand``: the forced command runs and sees the original request."""

    config_overrides = {"security": {"forceCommand": 'echo "original=$SSH_ORIGINAL_COMMAND"'}}

    async def test_forced_command_sees_original(self) -> None:
        """``ssh host 'ls -l'`` runs the forced command with SSH_ORIGINAL_COMMAND="ls -l"."""
        out, err, code = await self.ssh("ls -l")
        self.assertEqual((out, code), (b"original=ls -l\n", 0), err)
        self.assertIn("SECURITY_EXEC_FORCING_COMMAND", self.logged_codes())


class SFTPTestMixin:
    dir: Any
    port: int
    key_file: Any

    async def sftp(self) -> tuple[bytes, bytes, int]:
        """Run ``sftp`` in batch mode with one ``pwd``; returns (stdout, stderr, exit status)."""
        assert SFTP is not None, "the sftp client is required"
        batch = self.dir.child("batch")
        batch.setContent(b"pwd\n")
        args = [
            "-F", "/dev/null",
            "-o", f"UserKnownHostsFile={self.dir.child('known_hosts').path}",
            "-o", "StrictHostKeyChecking=no",
            "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes",
            "-i", self.key_file.path,
            "-b", batch.path,
            "-P", str(self.port),
            "alice@127.0.0.1",
        ]  # fmt: skip
        result: tuple[bytes, bytes, int] = await getProcessOutputAndValue(
            SFTP, args, env=dict(os.environ)
        )
        return result


class SubsystemDenyTests(SFTPTestMixin, GatewayTestCase):
    """``subsystem.deny: [sftp]``: sftp is refused while exec works."""

    config_overrides = {"security": {"subsystem": {"mode": "enable", "deny": ["sftp"]}}}

    async def test_sftp_refused_exec_works(self) -> None:
        """The sftp client fails on the refused subsystem; an exec on the same gateway runs."""
        out, err, code = await self.sftp()
        self.assertNotEqual(code, 0, (out, err))
        self.assertNotIn(b"Remote working directory", out)
        self.assertIn("SECURITY_SUBSYSTEM_REJECTED", self.logged_codes())
        out, err, code = await self.ssh("echo still-works")
        self.assertEqual((out, code), (b"still-works\n", 0), err)


class SubsystemFilterTests(SFTPTestMixin, GatewayTestCase):
    """``subsystem.mode: filter`` with ``allow: [sftp]``: sftp works."""

    config_overrides = {"security": {"subsystem": {"mode": "filter", "allow": ["sftp"]}}}

    async def test_sftp_allowed(self) -> None:
        """The allowed subsystem runs: ``pwd`` prints the remote directory."""
        out, err, code = await self.sftp()
        self.assertEqual(code, 0, (out, err))
        self.assertIn(b"Remote working directory: /", out)


class TTYDisabledTests(GatewayTestCase):
    """``tty.mode: disable``: PTY requests are refused; programs run without a terminal."""

    config_overrides = {"security": {"tty": {"mode": "disable"}}}

    async def test_explicit_tty_refused(self) -> None:
        """``ssh -tt host tty``: the PTY is refused and OpenSSH, told to insist on one, gives up.

        (OpenSSH treats a refused PTY as fatal when ``-t`` asked for it; it
        closes the channel it already sent its command on.)
        """
        out, err, code = await self.ssh("tty", "-tt", "-o", "LogLevel=INFO")
        self.assertEqual((out, code), (b"", 255), err)
        self.assertIn(b"PTY allocation request failed", err)
        self.assertIn("SECURITY_TTY_REJECTED", self.logged_codes())

    async def test_login_session_runs_without_terminal(self) -> None:
        """A login from a terminal: the PTY is refused, the shell runs without one."""
        if SCRIPT is None:
            self.skipTest("script(1) is needed to give the client a terminal")
        argv = " ".join(self.ssh_args("-o", "LogLevel=INFO"))
        # script(1) runs ssh on a terminal, so ssh asks for a PTY for the
        # login session; the input waits in that terminal until ssh reads it.
        out, err, code = await getProcessOutputAndValue(
            "/bin/sh",
            ["-c", f"printf 'tty\\nexit 7\\n' | {SCRIPT} -qec 'ssh {argv}' /dev/null"],
            env={"TERM": "xterm", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
        self.assertEqual(code, 7, (out, err))
        self.assertIn(b"PTY allocation request failed", out)
        self.assertIn(b"not a tty", out)
        self.assertIn("SECURITY_TTY_REJECTED", self.logged_codes())


class MaxSessionsTests(GatewayTestCase):
    """``maxSessions: 2`` counts the sessions open at the same time on a connection."""

    config_overrides = {"security": {"maxSessions": 2}}

    async def open(self, conn: Any) -> ClientChannel:
        channel = ClientChannel(conn=conn)
        conn.openChannel(channel)
        try:
            await channel.opened.addTimeout(30, reactor)
        except ConchError:
            pass  # the test looks at open_failure
        return channel

    async def test_third_concurrent_session_refused(self) -> None:
        """Two channels open, the third is refused for resource shortage; after one closes,
        a new one opens."""
        client = Client("alice", [], [keys.Key.fromString(self.client_pem)])
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        await connectProtocol(endpoint, client.transport)
        conn = await client.authenticated.addTimeout(30, reactor)
        self.addCleanup(client.transport.loseConnection)

        first = await self.open(conn)
        second = await self.open(conn)
        self.assertIsNone(first.open_failure)
        self.assertIsNone(second.open_failure)
        third = await self.open(conn)
        self.assertIsNotNone(third.open_failure)
        self.assertEqual(
            third.open_failure.args, (b"Too many sessions.", connection.OPEN_RESOURCE_SHORTAGE)
        )
        # Conch logs each channel open it refuses as a failure.
        self.assertIn("SECURITY_MAX_SESSIONS", self.logged_codes())

        await first.request(b"exec", exec_request("echo done"))
        await first.closed_d.addTimeout(30, reactor)
        self.assertEqual((first.stdout, first.exit_status), (b"done\n", 0))
        fourth = await self.open(conn)
        self.assertIsNone(fourth.open_failure)
        done: Deferred[Any] = fourth.request(b"exec", exec_request("echo again"))
        await done
        await fourth.closed_d.addTimeout(30, reactor)
        self.assertEqual(fourth.stdout, b"again\n")
