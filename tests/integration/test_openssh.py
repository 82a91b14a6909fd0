"""The gateway end to end with the real OpenSSH client and real containers.

ContainerSSH's conformance cases (echo, environment, exit code; the
interactive shell is in :mod:`tests.integration.test_conch_client`), password
and public-key logins through a real webhook server, refused logins, and a
webhook that is down. After every test no container of the gateway is left.
"""

from __future__ import annotations

import os

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.utils import getProcessOutputAndValue

from conch_container.errors import AUTH_UNAVAILABLE_USER_MESSAGE
from conch_container.testing.webhook import DOWN, WebhookUser
from tests.config.material import rsa_pem
from tests.integration.gateway import SSH, ControlMasterMixin, GatewayTestCase, public_line

ONE_PROMPT = ("-o", "NumberOfPasswordPrompts=1")


class ConformanceTests(GatewayTestCase):
    """ContainerSSH's conformance cases through ``ssh`` and a real container."""

    async def test_single_program(self) -> None:
        """``echo "Hello world!"`` prints it and exits 0 (conformance case 1)."""
        out, err, code = await self.ssh('echo "Hello world!"')
        self.assertEqual((out, code), (b"Hello world!\n", 0), err)

    async def test_environment_variable(self) -> None:
        """A variable sent with ``SetEnv`` reaches the program (conformance case 2)."""
        out, err, code = await self.ssh('echo "$FOO"', "-o", 'SetEnv=FOO="Hello world!"')
        self.assertEqual((out, code), (b"Hello world!\n", 0), err)

    async def test_exit_code(self) -> None:
        """The program's exit code is the client's exit status (conformance case 4)."""
        _out, err, code = await self.ssh("exit 42")
        self.assertEqual(code, 42, err)

    async def test_stdout_and_stderr_separate(self) -> None:
        """Without a terminal, stderr arrives on the client's stderr, stdout on stdout."""
        out, err, code = await self.ssh("echo out; echo err >&2")
        self.assertEqual((out, err, code), (b"out\n", b"err\n", 0))

    async def test_stdin_streamed_until_eof(self) -> None:
        """Client stdin reaches the program; EOF ends it; output still arrives."""
        self.dir.child("blob").setContent(b"x" * 1_000_000)

        argv = " ".join(self.ssh_args())
        out, err, code = await getProcessOutputAndValue(
            "/bin/sh", ["-c", f"ssh {argv} 'wc -c' < {self.dir.child('blob').path}"]
        )
        self.assertEqual((out.strip(), code), (b"1000000", 0), err)

    async def test_container_per_connection_removed(self) -> None:
        """Two logins get two different containers, each removed after its logout."""
        first, _, _ = await self.ssh("hostname")
        second, _, _ = await self.ssh("hostname")
        self.assertNotEqual(first, second)
        self.assertIn("DOCKER_CONTAINER_REMOVE_SUCCESSFUL", self.logged_codes())


class LoginTests(GatewayTestCase):
    """Password and public-key logins through the webhook, and refusals."""

    async def test_public_key_login_asks_webhook_once(self) -> None:
        """A key login sends one ``/pubkey`` request with the key in authorized_keys form."""
        out, err, code = await self.ssh("echo ok")
        self.assertEqual((out, code), (b"ok\n", 0), err)
        bodies = self.webhook.bodies("pubkey")
        self.assertEqual(len(bodies), 1)
        body = bodies[0]
        self.assertEqual(body["publicKey"], public_line(self.client_pem))
        self.assertEqual(body["username"], "alice")
        self.assertRegex(body["connectionId"], "^[0-9a-f]{32}$")
        self.assertRegex(body["remoteAddress"], r"^127\.0\.0\.1:\d+$")
        self.assertTrue(body["clientVersion"].startswith("SSH-2.0-OpenSSH"))

    async def test_rsa_key_login_with_ed25519_host_key(self) -> None:
        """An RSA user key logs in though the host key is Ed25519: OpenSSH finds
        ``rsa-sha2-*`` in ``server-sig-algs`` and signs with SHA-2 (not SHA-1)."""
        pem = rsa_pem()
        key_file = self.dir.child("id_rsa")
        key_file.setContent(pem.encode())
        os.chmod(key_file.path, 0o600)
        self.webhook.users["bob"] = WebhookUser(authorized_keys=[public_line(pem)])
        argv = self.ssh_args(
            "-o", "LogLevel=DEBUG3", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-i", key_file.path, user="bob", key=False,
        )  # fmt: skip
        out, err, code = await getProcessOutputAndValue(
            SSH or "ssh", [*argv, "echo ok"], env=dict(os.environ)
        )
        self.assertEqual((out, code), (b"ok\n", 0), err[-3000:])
        self.assertIn(b"signing using rsa-sha2-", err)

    async def test_password_login(self) -> None:
        """A password login through the webhook gets a container."""
        out, err, code = await self.ssh("echo ok", password="wonderland")
        self.assertEqual((out, code), (b"ok\n", 0), err)
        body = self.webhook.bodies("password")[0]
        self.assertEqual(body["passwordBase64"], "d29uZGVybGFuZA==")

    async def test_wrong_password_refused(self) -> None:
        """A wrong password is refused and no container is created."""
        _out, err, code = await self.ssh(
            "echo ok", "-o", "NumberOfPasswordPrompts=1", password="nope"
        )
        self.assertEqual(code, 255)
        self.assertIn(b"Permission denied", err)
        self.assertNotIn("DOCKER_CONTAINER_CREATE", self.logged_codes())
        self.assertIn("SSH_AUTH_FAILED", self.logged_codes())

    async def test_unknown_key_refused(self) -> None:
        """A key the webhook does not know is refused."""
        _out, err, code = await self.ssh("echo ok", user="mallory")
        self.assertEqual(code, 255)
        self.assertIn(b"Permission denied", err)


class WebhookDownTests(GatewayTestCase):
    """A webhook that keeps failing ends in a clean "unavailable" for the user."""

    config_overrides = {
        "auth": {
            "password": {
                "method": "webhook",
                "webhook": {"url": "PLACEHOLDER", "authTimeout": "1s"},
            },
        }
    }

    def config_data(self) -> dict[str, object]:
        data = super().config_data()
        data["auth"] = {
            "password": {
                "method": "webhook",
                "webhook": {"url": self.webhook_url, "timeout": "200ms", "authTimeout": "1s"},
            }
        }
        return data

    async def test_webhook_down(self) -> None:
        """Status 503 on every call: the user reads the unavailable message, the log has codes."""
        self.webhook.inject(DOWN)
        _out, err, code = await self.ssh(
            "echo ok",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-o",
            "LogLevel=INFO",
            password="wonderland",
        )
        self.assertEqual(code, 255)
        self.assertIn(AUTH_UNAVAILABLE_USER_MESSAGE.encode(), err)
        self.assertNotIn(b"Traceback", err)
        codes = self.logged_codes()
        self.assertIn("AUTH_INVALID_STATUS", codes)
        self.assertIn("AUTH_BACKEND_ERROR", codes)
        self.assertIn("SSH_AUTH_UNAVAILABLE", codes)
        self.assertNotIn("DOCKER_CONTAINER_CREATE", codes)

    async def test_webhook_unreachable(self) -> None:
        """Nothing listening at the webhook URL ends the same clean way."""
        await self.webhook_port.stopListening()
        _out, err, code = await self.ssh(
            "echo ok",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-o",
            "LogLevel=INFO",
            password="wonderland",
        )
        self.assertEqual(code, 255)
        self.assertIn(AUTH_UNAVAILABLE_USER_MESSAGE.encode(), err)
        self.assertIn("HTTP_CLIENT_CONNECTION_FAILED", self.logged_codes())


class TerminalTests(GatewayTestCase):
    """Sessions with a terminal (``ssh -tt``)."""

    async def test_piped_commands_into_terminal_shell(self) -> None:
        """Input piped into a terminal shell runs, its output arrives, the exit code is kept.

        The client sends EOF right after the input; with a terminal that must
        not cut the session short.
        """

        argv = " ".join(self.ssh_args("-tt"))
        out, err, code = await getProcessOutputAndValue(
            "/bin/sh",
            ["-c", f"printf 'tput cols\\necho $TERM\\nexit 3\\n' | ssh {argv}"],
            env={"TERM": "xterm", "PATH": "/usr/bin:/bin"},
        )
        self.assertEqual(code, 3, err)
        self.assertIn(b"80\r\n", out)
        self.assertIn(b"xterm\r\n", out)


class SharedConnectionTests(ControlMasterMixin, GatewayTestCase):
    """Several session channels on one connection (OpenSSH connection sharing)."""

    async def test_sessions_share_the_connection_container(self) -> None:
        """In connection mode every session of one connection runs in the same container."""
        await self.start_master()
        results = await gatherResults(
            [
                Deferred.fromCoroutine(self.ssh("hostname; exit 5", "-S", self.control))
                for _ in range(3)
            ]
        )
        self.assertEqual([code for _, _, code in results], [5, 5, 5])
        self.assertEqual(len({out for out, _, _ in results}), 1)
        self.assertEqual(len(self.webhook.bodies("pubkey")), 1)

    async def test_exit_status_with_stdin_at_end(self) -> None:
        """A shared connection's session with stdin at its end at once (``-n``) gets its
        exit status: the master closes such a channel as soon as both sides sent EOF,
        so the status must come before the gateway's EOF, as sshd sends it."""
        await self.start_master()
        for command, expected in (("echo hi", 0), ("exit 3", 3), ("head -c 1000000 /dev/zero", 0)):
            with self.subTest(command=command):
                _out, err, code = await self.ssh(command, "-n", "-S", self.control)
                self.assertEqual(code, expected, err)

    async def test_output_closed_before_the_end(self) -> None:
        """A program that closes its output and runs on: EOF first, the status at its end."""
        await self.start_master()
        out, err, code = await self.ssh(
            "echo before; exec >&- 2>&-; sleep 2; exit 4", "-n", "-S", self.control
        )
        self.assertEqual((out, code), (b"before\n", 4), err)


class LongProgramTests(GatewayTestCase):
    """Exit statuses that ContainerSSH loses."""

    async def test_exit_status_long_after_stdin_closed(self) -> None:
        """Stdin closes first, the program runs on for over 60 s, its exit status still arrives.

        ContainerSSH stops waiting for the exit code 60 s after either stream
        ends; here the status follows the program's end, however late.
        """
        out, err, code = await self.ssh("cat >/dev/null; sleep 62; echo done; exit 3", "-n")
        self.assertEqual((out, code), (b"done\n", 3), err)
