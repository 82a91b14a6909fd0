"""``conch-container test-webhook-server`` as a process: serves over HTTP, stops on SIGTERM."""

from __future__ import annotations

import signal
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from conch_container import messages
from conch_container.webhook.client import WebhookClient
from conch_container.webhook.protocol import PASSWORD_PATH, decode_auth_response, password_request
from tests.integration.processes import Output, clean_env, log_records, signal_quietly, until
from tests.testing.authconfig_support import METADATA, USERS_YAML
from tests.webhook.pki import issue, make_ca
from tests.webhook.support import ClientConfig


def _address(output: bytes) -> str | None:
    for event in log_records(output):
        if event.get("code") == messages.CONFIG_SERVER_AVAILABLE.code:
            return str(event["details"]["listen"])
    return None


class CommandTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.dir = FilePath(self.mktemp())
        self.dir.makedirs()
        self.users = self.dir.child("users.yaml")
        self.users.setContent(USERS_YAML.encode())

    def spawn(self, *args: str) -> tuple[Any, Output]:
        output = Output()
        process = reactor.spawnProcess(  # type: ignore[attr-defined]
            output, sys.executable, [sys.executable, *args], env=clean_env(), path=self.dir.path
        )
        self.addCleanup(signal_quietly, process, signal.SIGKILL)
        return process, output

    async def test_serves_and_stops_on_sigterm(self) -> None:
        """It logs its bound address, answers the gateway's client, and exits 0 on SIGTERM."""
        process, output = self.spawn(
            "-m", "conch_container.cli", "test-webhook-server",
            "--users", self.users.path, "--listen", "127.0.0.1:0",
            "--log-format", "ljson", "--log-level", "debug",
        )  # fmt: skip
        await until(lambda: _address(output.output) or output.ended.called, 30, "listening")
        address = _address(output.output)
        self.assertIsNotNone(address, output.output.decode(errors="replace"))
        client = WebhookClient(ClientConfig(url=f"http://{address}", timeout=10.0), reactor=reactor)
        try:
            result = await client.post(
                PASSWORD_PATH, password_request(METADATA, b"secret"), decode=decode_auth_response
            )
        finally:
            await client.close()
        self.assertTrue(result.success)

        process.signalProcess(signal.SIGTERM)
        exit_code, signum = await output.ended
        self.assertEqual((exit_code, signum), (0, None), output.output.decode(errors="replace"))
        codes = [event.get("code") for event in log_records(output.output)]
        self.assertIn(messages.TEST_WEBHOOK_ANSWERED.code, codes)
        self.assertIn(messages.TEST_WEBHOOK_STOPPED.code, codes)
        self.assertNotIn(b"secret", output.output)

    async def test_bad_users_file(self) -> None:
        """A users file with a bad override exits 2, naming the user and the key."""
        self.users.setContent(
            b'users:\n  al:\n    authorizedKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHnTNqmvBWQ'
            b'TPEwhjXT4fBqPeLH7c2NFQ7Bm6C4tCGqc"]\n    config: {docker: {colour: red}}\n'
        )
        _, output = self.spawn(
            "-m", "conch_container.testing.authconfig", "--users", self.users.path
        )  # fmt: skip
        exit_code, _ = await output.ended
        self.assertEqual(exit_code, 2)
        self.assertIn(b"users.al.config.docker.colour: unknown key", output.output)

    async def test_unusable_options(self) -> None:
        """A bad address, a lone --cert, or a key that is not the certificate's exit 2, named."""
        ca = make_ca()
        server, other = issue(ca, "localhost"), issue(ca, "other")
        cert, key = self.dir.child("cert.pem"), self.dir.child("other.key")
        cert.setContent(server.cert_pem.encode())
        key.setContent(other.key_pem.encode())
        cases = (
            (["--listen", "8080"], b"--listen: must be host:port"),
            (["--cert", cert.path], b"--cert and --key: cert and key must be set together"),
            (["--cert", cert.path, "--key", key.path], b"does not match the key"),
        )
        for options, message in cases:
            _, output = self.spawn(
                "-m", "conch_container.testing.authconfig", "--users", self.users.path, *options
            )  # fmt: skip
            exit_code, _ = await output.ended
            self.assertEqual(exit_code, 2, output.output.decode(errors="replace"))
            self.assertIn(message, output.output)
            self.assertNotIn(b"Traceback", output.output)

    async def test_address_in_use(self) -> None:
        """An address that cannot be bound exits 1 with the reason."""
        port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        _, output = self.spawn(
            "-m", "conch_container.testing.authconfig", "--users", self.users.path,
            "--listen", f"127.0.0.1:{port.getHost().port}",
        )  # fmt: skip
        exit_code, _ = await output.ended
        self.assertEqual(exit_code, 1, output.output.decode(errors="replace"))
        self.assertIn(b"cannot listen on", output.output)
        self.assertIn(messages.HTTP_LISTEN_FAILED.code.encode(), output.output)
        self.assertNotIn(b"Traceback", output.output)
