"""Tests for conch_container.backend.docker.pull: pull decisions, names and credentials."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.docker.pull import (
    PullPolicy,
    canonical_image_name,
    is_permanent_pull_error,
    registry_auth,
)


class PullPolicyTests(SynchronousTestCase):
    def test_parse(self) -> None:
        """Policy names parse; empty means IfNotPresent; anything else is an error."""
        self.assertIs(PullPolicy.parse("Always"), PullPolicy.ALWAYS)
        self.assertIs(PullPolicy.parse("Never"), PullPolicy.NEVER)
        self.assertIs(PullPolicy.parse("IfNotPresent"), PullPolicy.IF_NOT_PRESENT)
        self.assertIs(PullPolicy.parse(""), PullPolicy.IF_NOT_PRESENT)
        self.assertRaises(ValueError, PullPolicy.parse, "always")

    def test_decisions(self) -> None:
        """Always pulls, Never does not, IfNotPresent pulls only a missing image."""
        self.assertTrue(PullPolicy.ALWAYS.should_pull())
        self.assertFalse(PullPolicy.NEVER.should_pull())
        self.assertFalse(PullPolicy.ALWAYS.needs_inspect)
        self.assertFalse(PullPolicy.NEVER.needs_inspect)
        self.assertTrue(PullPolicy.IF_NOT_PRESENT.needs_inspect)
        self.assertTrue(PullPolicy.IF_NOT_PRESENT.should_pull(present=False))
        self.assertFalse(PullPolicy.IF_NOT_PRESENT.should_pull(present=True))
        self.assertRaises(ValueError, PullPolicy.IF_NOT_PRESENT.should_pull)

    def test_latest_not_special(self) -> None:
        """IfNotPresent does not pull a present :latest image (ContainerSSH 0.6 behaviour)."""
        self.assertFalse(PullPolicy.IF_NOT_PRESENT.should_pull(present=True))


class NameTests(SynchronousTestCase):
    def test_canonical(self) -> None:
        """Short names get docker.io and library/; registry hosts are kept."""
        for image, name in (
            ("busybox", "docker.io/library/busybox"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("containerssh/agent", "docker.io/containerssh/agent"),
            ("localhost:5000/x", "localhost:5000/x"),
            ("localhost/x", "localhost/x"),
            ("quay.io/a/b:1", "quay.io/a/b:1"),
            ("docker.io/library/busybox", "docker.io/library/busybox"),
        ):
            self.assertEqual(canonical_image_name(image), name)


class RegistryAuthTests(SynchronousTestCase):
    def test_keys(self) -> None:
        """Known keys are kept in lower case, empty and unknown ones dropped."""
        self.assertEqual(
            registry_auth(
                {"Username": "u", "password": "p", "serverAddress": "r", "email": "", "x": "y"}
            ),
            {"username": "u", "password": "p", "serveraddress": "r"},
        )

    def test_none(self) -> None:
        """No credentials give an empty object (anonymous, never the host's own)."""
        self.assertEqual(registry_auth(None), {})


class ErrorClassificationTests(SynchronousTestCase):
    def test_permanent(self) -> None:
        """Unauthorised, forbidden and not-found pulls are not retried."""
        self.assertTrue(is_permanent_pull_error(404, "whatever"))
        self.assertTrue(is_permanent_pull_error(401, ""))
        self.assertTrue(
            is_permanent_pull_error(
                500, "pull access denied for x, repository does not exist or may require login"
            )
        )
        self.assertTrue(is_permanent_pull_error(None, "unauthorized: authentication required"))
        self.assertTrue(is_permanent_pull_error(None, "manifest unknown"))

    def test_transient(self) -> None:
        """Network trouble is retried."""
        self.assertFalse(
            is_permanent_pull_error(
                500, 'Get "https://registry-1.docker.io/v2/": dial tcp: lookup x: no such host'
            )
        )
        self.assertFalse(is_permanent_pull_error(None, "connection reset by peer"))
