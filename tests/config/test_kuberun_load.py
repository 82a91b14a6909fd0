"""A kuberun file end to end: read, warned about, and loaded in the Kubernetes ``session`` mode.

kuberun translates to the Kubernetes backend's ``session`` mode, which the
backend has: the translation loads (with the deprecation warning).
"""

from __future__ import annotations

import io
import sys

import yaml
from twisted.trial.unittest import SynchronousTestCase

from conch_container import cli, messages
from conch_container.config import ConfigError, load_config, parse_config
from conch_container.config.loader import checked_config
from conch_container.config.validate import validate_config

from .material import fixture
from .test_kuberun import kuberun


class LoadTests(SynchronousTestCase):
    """End to end: a kuberun file reads and loads in session mode."""

    def test_fixture_translates(self) -> None:
        """ContainerSSH 0.3's dump of the kuberun section reads, lower-case Go names and all."""
        with open(fixture("kuberun-0.3.yaml"), encoding="utf-8") as file:
            config = parse_config(yaml.safe_load(file))
        self.assertEqual(config.backend, "kubernetes")
        self.assertIn(messages.KUBERUN_DEPRECATED, [w.code for w in config.warnings])
        spec = config.kubernetes.pod.spec
        self.assertEqual(spec["initContainers"], [])
        self.assertEqual(spec["hostPID"], False)
        self.assertEqual(spec["serviceAccount"], "")
        self.assertNotIn("livenessProbe", spec["containers"][0])

    def test_loads_in_session_mode(self) -> None:
        """load_config accepts the translation: its pod mode, session, is built."""
        config = load_config(fixture("kuberun-0.3.yaml"))
        self.assertEqual(config.backend, "kubernetes")
        self.assertEqual(config.kubernetes.pod.mode, "session")
        self.assertIn(messages.KUBERUN_DEPRECATED, [w.code for w in config.warnings])

    def test_translation_validates(self) -> None:
        """The translation is valid and passes the unsupported table.

        ``validate_config`` runs the kubernetes checks because the backend is
        now ``kubernetes``; neither it nor ``checked_config`` raises.
        """
        document = kuberun(pod={"namespace": "users"})
        document["auth"] = {
            "password": {"method": "webhook", "webhook": {"url": "http://127.0.0.1:8080"}}
        }
        config = parse_config(document)
        validate_config(config)
        checked = checked_config(config)
        self.assertEqual(checked.kubernetes.pod.mode, "session")


class CommandTests(SynchronousTestCase):
    """What the operator sees: the deprecation warning, then the file is accepted."""

    def setUp(self) -> None:
        self.stderr = io.StringIO()
        self.patch(sys, "stderr", self.stderr)

    def test_check_config(self) -> None:
        """check-config prints the KUBERUN_DEPRECATED warning and exits 0."""
        self.assertEqual(cli.main(["check-config", "-c", fixture("kuberun-0.3.yaml")]), 0)
        output = self.stderr.getvalue()
        self.assertIn("KUBERUN_DEPRECATED", output)
        self.assertIn("translated into backend: kubernetes", output)
        self.assertIn("warning: kuberun: ", output)

    def test_warnings_before_a_parse_error(self) -> None:
        """A refusal while reading (insecure without the opt-in) keeps the warnings before it."""
        with self.assertRaises(ConfigError) as raised:
            parse_config(kuberun(connection={"insecure": True}))
        self.assertEqual([w.code for w in raised.exception.warnings], [messages.KUBERUN_DEPRECATED])
