"""The real OpenSSH client against the SSH server (fake backend, real reactor, loopback).

Skipped when ``ssh`` is not installed. The client runs with ``-F /dev/null``,
a private known_hosts file, only the test's key and no agent, so nothing of
the machine's SSH setup leaks in.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from twisted.internet import reactor as global_reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from conch_container import messages
from conch_container.errors import AUTH_UNAVAILABLE_USER_MESSAGE, ContainerSSHError
from conch_container.service import SessionRegistry
from conch_container.ssh.factory import ContainerSSHFactory
from conch_container.testing.backend import FakeBackend
from tests.ssh.harness import (
    Authenticators,
    Passwords,
    PublicKeys,
    collecting_log,
    make_config,
    new_ed25519_pem,
)

SSH = shutil.which("ssh")
reactor: Any = global_reactor


class OpenSSHClientTests(TestCase):
    """``ssh`` logs in with a key and runs commands in the fake backend."""

    timeout = 60

    if SSH is None:
        skip = "the OpenSSH client (ssh) is not installed"

    def setUp(self) -> None:
        from twisted.conch.ssh import keys

        self.dir = FilePath(self.mktemp())
        self.dir.makedirs()
        pem = new_ed25519_pem()
        self.key_file = self.dir.child("id_ed25519")
        self.key_file.setContent(pem.encode())
        os.chmod(self.key_file.path, 0o600)
        key = keys.Key.fromString(pem)
        line = " ".join(key.public().toString("openssh").decode().split()[:2])
        self.public_keys = PublicKeys({"tester": [line]})
        self.events: list[dict[str, Any]] = []
        self.start_server()

    def start_server(self, **ssh: Any) -> None:
        log = collecting_log(self.events)
        self.backend = FakeBackend(reactor)
        self.registry = SessionRegistry(reactor, log)
        self.factory = ContainerSSHFactory(
            make_config(**ssh),
            Authenticators(password=Passwords(), public_key=self.public_keys),
            self.backend,
            self.registry,
            reactor,
            log,
            "openssh-test",
        )
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    async def ssh(self, command: str, *options: str, stdin: bytes | None = None) -> Any:
        """Run ``ssh`` with ``command``; returns (stdout, stderr, exit code)."""
        args = [
            "-F",
            "/dev/null",
            "-o",
            f"UserKnownHostsFile={self.dir.child('known_hosts').path}",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "PreferredAuthentications=publickey",
            "-i",
            self.key_file.path,
            "-p",
            str(self.port.getHost().port),
            *options,
            "tester@127.0.0.1",
            command,
        ]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.dir.path}
        if stdin is None:
            result = await getProcessOutputAndValue(SSH, args, env=env, reactor=reactor)
        else:
            # getProcessOutputAndValue has no stdin: let a shell pipe it in.
            self.dir.child("stdin").setContent(stdin)
            script = (
                " ".join(f"'{a}'" for a in [SSH, *args]) + f" < '{self.dir.child('stdin').path}'"
            )
            result = await getProcessOutputAndValue(
                "/bin/sh", ["-c", script], env=env, reactor=reactor
            )
        await self.factory.wait_closed()
        return result

    async def test_exec(self) -> None:
        """A command runs; its output and exit status reach the client."""
        out, _, code = await self.ssh('echo "Hello world!"')
        self.assertEqual((out, code), (b"Hello world!\n", 0))
        self.assertEqual(self.backend.live_containers, [])
        [(metadata, _)] = self.public_keys.calls
        self.assertTrue(metadata.client_version.startswith("SSH-2.0-OpenSSH"))

    async def test_exit_status(self) -> None:
        """``exit 42`` makes ``ssh`` exit 42."""
        _, _, code = await self.ssh("exit 42")
        self.assertEqual(code, 42)

    async def test_environment(self) -> None:
        """``SetEnv`` variables reach the program."""
        out, _, _ = await self.ssh('echo "$GREETING"', "-o", "SetEnv=GREETING=hello")
        self.assertEqual(out, b"hello\n")

    async def test_stdin(self) -> None:
        """Stdin is streamed to the program and closed at its end."""
        data = os.urandom(300_000)
        out, _, code = await self.ssh("cat", stdin=data)
        self.assertEqual((len(out), code), (len(data), 0))
        self.assertEqual(out, data)

    async def test_large_output(self) -> None:
        """Several megabytes of output arrive complete (window and flow control)."""
        out, _, code = await self.ssh("head -c 5000000 /dev/zero")
        self.assertEqual((len(out), code), (5_000_000, 0))

    async def test_terminal(self) -> None:
        """With ``-tt`` the program gets a terminal: CRLF line ends."""
        out, _, code = await self.ssh("echo hi", "-tt")
        self.assertEqual((out, code), (b"hi\r\n", 0))

    async def test_refused_key(self) -> None:
        """A key the authenticator refuses: permission denied."""
        self.public_keys.users = {}
        _, err, code = await self.ssh("true")
        self.assertEqual(code, 255)
        self.assertIn(b"Permission denied", err)

    async def test_unavailable_authentication(self) -> None:
        """An authenticator outage is explained to the user."""
        self.public_keys.unavailable = True
        _, err, code = await self.ssh("true")
        self.assertEqual(code, 255)
        self.assertIn(AUTH_UNAVAILABLE_USER_MESSAGE.encode(), err)

    async def test_backend_failure(self) -> None:
        """A backend failure after login shows the user message, nothing more."""
        self.backend.connect_error = ContainerSSHError(
            messages.DOCKER_CONTAINER_CREATE_FAILED,
            "Failed to initialize SSH session.",
            "secret engine detail",
        )
        _, err, code = await self.ssh("true")
        self.assertEqual(code, 255)
        self.assertIn(b"Failed to initialize SSH session.", err)
        self.assertNotIn(b"secret engine detail", err)

    async def test_program_start_failure(self) -> None:
        """A program that cannot start: the user message on stderr, ssh fails."""
        self.backend.start_error = ContainerSSHError(
            messages.DOCKER_EXEC_CREATE_FAILED, "Cannot run your program.", "engine detail"
        )
        out, err, code = await self.ssh("true")
        self.assertEqual((out, code), (b"", 1))
        self.assertIn(b"Cannot run your program.\n", err)
        self.assertNotIn(b"engine detail", err)

    async def test_banner(self) -> None:
        """``ssh.banner`` is printed by the client."""
        await self.port.stopListening()
        self.start_server(banner="Welcome to the gateway\n")
        _, err, code = await self.ssh("true", "-o", "LogLevel=INFO")
        self.assertEqual(code, 0)
        self.assertIn(b"Welcome to the gateway", err)
