"""A kuberun file end to end: read, warned about, then refused for its pod mode.

kuberun translates to the Kubernetes backend's ``session`` mode, which is not
built yet (only ``connection`` mode is): these tests flip when it lands and
its row leaves ``config/unsupported.py``; the same files then load.
"""

from __future__ import annotations

import io
import json
import sys

import yaml
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from conch_container import cli, messages
from conch_container.config import ConfigError, load_config, parse_config
from conch_container.config.loader import checked_config
from conch_container.config.validate import validate_config
from conch_container.tap import Options

from .material import fixture
from .test_kuberun import kuberun


class LoadTests(SynchronousTestCase):
    """End to end: a kuberun file reads, then meets the refusal of session mode."""

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

    def test_refused_for_session_mode_today(self) -> None:
        """load_config refuses the translation for its pod mode, session, not built yet.

        This flips when session mode lands and its row leaves
        ``config/unsupported.py``: the same file then loads.
        """
        with self.assertRaises(ConfigError) as raised:
            load_config(fixture("kuberun-0.3.yaml"))
        self.assertEqual(raised.exception.key_path, "kubernetes.pod.mode")
        self.assertIn("session mode is not supported yet", raised.exception.problem)

    def test_translation_validates(self) -> None:
        """Past the unsupported table (as once the backend lands), the translation is valid.

        ``validate_config`` runs the kubernetes checks because the backend is
        now ``kubernetes``; it raises nothing. ``checked_config`` refuses only
        because of the unsupported table, naming ``kubernetes.pod.mode``.
        """
        document = kuberun(pod={"namespace": "users"})
        document["auth"] = {
            "password": {"method": "webhook", "webhook": {"url": "http://127.0.0.1:8080"}}
        }
        config = parse_config(document)
        validate_config(config)
        with self.assertRaises(ConfigError) as raised:
            checked_config(config)
        self.assertEqual(raised.exception.key_path, "kubernetes.pod.mode")


class CommandTests(SynchronousTestCase):
    """What the operator sees: the deprecation, then why the translation is refused today."""

    def setUp(self) -> None:
        self.stderr = io.StringIO()
        self.patch(sys, "stderr", self.stderr)

    def assert_warned_then_refused(self, output: str) -> None:
        deprecated = output.index("KUBERUN_DEPRECATED")
        refused = output.index("session mode is not supported yet")
        self.assertLess(deprecated, refused)
        self.assertIn("translated into backend: kubernetes", output)

    def test_check_config(self) -> None:
        """check-config prints the KUBERUN_DEPRECATED warning before the refusal, and exits 1."""
        self.assertEqual(cli.main(["check-config", "-c", fixture("kuberun-0.3.yaml")]), 1)
        self.assert_warned_then_refused(self.stderr.getvalue())
        self.assertIn("warning: kuberun: ", self.stderr.getvalue())

    def test_twistd(self) -> None:
        """twistd logs KUBERUN_DEPRECATED before CORE_CONFIG_ERROR, and does not start."""
        with self.assertRaises(usage.UsageError) as raised:
            Options().parseOptions(["--config", fixture("kuberun-0.3.yaml")])
        self.assertIn(
            "kubernetes.pod.mode: the Kubernetes backend's session", str(raised.exception)
        )
        lines = [json.loads(line) for line in self.stderr.getvalue().splitlines()]
        codes = [line["code"] for line in lines]
        self.assertLess(codes.index("KUBERUN_DEPRECATED"), codes.index("CORE_CONFIG_ERROR"))
        [warning] = [line for line in lines if line["code"] == "KUBERUN_DEPRECATED"]
        self.assertEqual(warning["level"], "warning")

    def test_warnings_before_a_parse_error(self) -> None:
        """A refusal while reading (insecure without the opt-in) keeps the warnings before it."""
        with self.assertRaises(ConfigError) as raised:
            parse_config(kuberun(connection={"insecure": True}))
        self.assertEqual([w.code for w in raised.exception.warnings], [messages.KUBERUN_DEPRECATED])
