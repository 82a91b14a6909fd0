"""The demo's gateway configurations pass ``conch-container check-config`` as shipped."""

from __future__ import annotations

import importlib.resources
import io
import os
import shutil
import sys

from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from conch_container import cli, messages
from conch_container.config import load_config

DEMO = importlib.resources.files("conch_container") / "demo"


class DemoConfigTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.stderr = io.StringIO()
        self.patch(sys, "stderr", self.stderr)
        self.patch(sys, "stdout", io.StringIO())
        # A copy: the gateway writes generated host keys back into the file.
        self.dir = FilePath(self.mktemp())
        with importlib.resources.as_file(DEMO) as demo:
            shutil.copytree(demo, self.dir.path)
        # As the demo runs: file names in the configuration are relative to the working directory.
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(self.dir.path)

    def check_config(self, name: str) -> None:
        """check-config exits 0 and reports nothing but CORE_CONFIG_VALID."""
        path = self.dir.child(name).path
        self.assertEqual(cli.main(["check-config", "-c", path]), 0, self.stderr.getvalue())
        reported = self.stderr.getvalue()
        self.assertIn(messages.CORE_CONFIG_VALID.code, reported)
        self.assertEqual(reported.count('"code"'), 1, reported)

    def test_static_users(self) -> None:
        """config.yaml: static users from users.yaml."""
        self.check_config("config.yaml")

    def test_webhooks_and_configuration_server(self) -> None:
        """webhook-config.yaml: webhooks and a configuration server on the test webhook server."""
        self.check_config("webhook-config.yaml")
        config = load_config(self.dir.child("webhook-config.yaml").path)
        self.assertEqual(config.configserver.url, "http://127.0.0.1:8080/config")
        self.assertEqual(config.auth.authz.method, "webhook")

    def test_kubernetes(self) -> None:
        """kubernetes-config.yaml: the Kubernetes backend on the test API server."""
        # What the test API server writes before the demo checks the config.
        self.dir.child("kubeapi-tls").makedirs()
        self.dir.child("kubeapi-tls").child("ca.crt").setContent(b"")
        self.check_config("kubernetes-config.yaml")
        config = load_config(self.dir.child("kubernetes-config.yaml").path)
        self.assertEqual(config.backend, "kubernetes")
        self.assertEqual(config.kubernetes.pod.mode, "connection")
