"""The pre-authentication limits as the real OpenSSH client meets them.

A client offering many keys sends one unsigned query and one signed attempt
per key, one at a time: it must reach ``maxAuthTries`` (the client prints the
server's "too many authentication failures"), never the query budget or the
pending-request cap. Skipped when ``ssh`` is not installed.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from twisted.conch.ssh import keys
from twisted.internet import reactor as global_reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from conch_container.service import SessionRegistry
from conch_container.ssh.factory import ContainerSSHFactory
from conch_container.testing.backend import FakeBackend
from tests.ssh.harness import (
    Authenticators,
    PublicKeys,
    authorized,
    collecting_log,
    make_config,
    new_ed25519_pem,
)

SSH = shutil.which("ssh")
reactor: Any = global_reactor


class OpenSSHManyKeysTests(TestCase):
    """``ssh`` with several identity files against the server."""

    timeout = 60

    if SSH is None:
        skip = "the OpenSSH client (ssh) is not installed"

    def setUp(self) -> None:
        self.dir = FilePath(self.mktemp())
        self.dir.makedirs()
        self.events: list[dict[str, Any]] = []
        self.public_keys = PublicKeys({})
        log = collecting_log(self.events)
        self.backend = FakeBackend(reactor)
        self.factory = ContainerSSHFactory(
            make_config(),
            Authenticators(public_key=self.public_keys),
            self.backend,
            SessionRegistry(reactor, log),
            reactor,
            log,
            "openssh-limits-test",
        )
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    def identity(self, name: str) -> tuple[str, keys.Key]:
        """A new key written to an identity file; returns (path, key)."""
        pem = new_ed25519_pem()
        path = self.dir.child(name)
        path.setContent(pem.encode())
        os.chmod(path.path, 0o600)
        return path.path, keys.Key.fromString(pem)

    async def ssh(self, identities: list[str]) -> Any:
        """Run ``ssh ... true`` offering ``identities`` in order; (stdout, stderr, code)."""
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
            *[arg for path in identities for arg in ("-i", path)],
            "-p",
            str(self.port.getHost().port),
            "tester@127.0.0.1",
            "true",
        ]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.dir.path}
        result = await getProcessOutputAndValue(SSH, args, env=env, reactor=reactor)
        await self.factory.wait_closed()
        return result

    def codes(self) -> list[str]:
        return [e["code"] for e in self.events if "code" in e]

    async def test_good_key_after_refused_ones(self) -> None:
        """Three refused keys, then the right one: the login succeeds."""
        refused = [self.identity(f"refused{i}")[0] for i in range(3)]
        good, key = self.identity("good")
        self.public_keys.users = {"tester": [authorized(key)]}
        _, _, code = await self.ssh([*refused, good])
        self.assertEqual(code, 0)
        self.assertIn("SSH_HANDSHAKE_SUCCESSFUL", self.codes())
        self.assertNotIn("SSH_AUTH_TOO_MANY_PENDING", self.codes())
        self.assertNotIn("SSH_AUTH_TOO_MANY_ATTEMPTS", self.codes())

    async def test_many_refused_keys_reach_max_auth_tries(self) -> None:
        """Eight refused keys: the sixth signed attempt ends it, as OpenSSH's server would."""
        refused = [self.identity(f"refused{i}")[0] for i in range(8)]
        _, err, code = await self.ssh(refused)
        self.assertEqual(code, 255)
        self.assertIn(b"too many authentication failures", err)
        self.assertEqual(len(self.public_keys.calls), 6)
        [event] = [e for e in self.events if e.get("code") == "SSH_AUTH_TOO_MANY_ATTEMPTS"]
        self.assertEqual(event["attempts"], 6)
        self.assertNotIn("queries", event)
        self.assertNotIn("SSH_AUTH_TOO_MANY_PENDING", self.codes())
