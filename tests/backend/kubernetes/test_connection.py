"""Connection settings: ContainerSSH keys, in-cluster discovery, kubeconfig, the client."""

from __future__ import annotations

import base64
import os
import stat
from typing import Any

import yaml
from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.backend.kubernetes.connection import (
    ClusterSettings,
    thd_api_client,
)
from conch_container.backend.kubernetes.credentials import Credentials
from conch_container.backend.kubernetes.errors import ClusterConfigError
from conch_container.backend.kubernetes.sources import thd_resolve
from conch_container.config.kubernetes import KubernetesConfig, KubernetesConnectionConfig
from tests.webhook.pki import issue, make_ca

CA = make_ca("Kubernetes test CA")
CLIENT = issue(CA, "gateway", client=True)


def config(**connection: Any) -> KubernetesConfig:
    return KubernetesConfig(connection=KubernetesConnectionConfig(**connection))


class Files(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def resolve(self, cfg: KubernetesConfig, **kwargs: Any) -> ClusterSettings:
        kwargs.setdefault("environ", {})
        kwargs.setdefault("service_account_dir", os.path.join(self.dir, "no-such-dir"))
        return thd_resolve(cfg, **kwargs)

    def assert_config_error(self, cfg: KubernetesConfig, key_path: str, **kwargs: Any) -> str:
        with self.assertRaises(ClusterConfigError) as caught:
            self.resolve(cfg, **kwargs)
        self.assertEqual(caught.exception.code, messages.KUBERNETES_CONFIG_ERROR)
        self.assertEqual(caught.exception.key_path, key_path)
        self.assertTrue(caught.exception.explanation.startswith(key_path))
        return caught.exception.explanation


class ExplicitSettingsTests(Files):
    def test_defaults_without_cluster(self) -> None:
        """Outside a pod the default host is used over http, without credentials (client-go)."""
        settings = self.resolve(config())
        self.assertEqual(settings.base_url, "http://kubernetes.default.svc")
        self.assertIsNone(settings.credentials.authorization())
        self.assertEqual((settings.qps, settings.burst), (5.0, 10))

    def test_tls_material_means_https_and_path_prefix(self) -> None:
        """A CA makes a schemeless host https; a path before /api becomes the URL prefix."""
        settings = self.resolve(
            config(host="10.1.2.3:6443", path="/proxy/api", cacert=CA.cert_pem, qps=0, burst=0)
        )
        self.assertEqual(settings.base_url, "https://10.1.2.3:6443/proxy")
        self.assertEqual(settings.pem.ca, CA.cert_pem)
        self.assertEqual((settings.qps, settings.burst), (5.0, 10))

    def test_path_must_end_in_api(self) -> None:
        """A path that is not an API path is refused naming kubernetes.connection.path."""
        self.assert_config_error(config(path="/apis"), "kubernetes.connection.path")

    def test_bad_scheme(self) -> None:
        """A host URL with another scheme is refused naming kubernetes.connection.host."""
        self.assert_config_error(config(host="ftp://x"), "kubernetes.connection.host")

    def test_bearer_token(self) -> None:
        """An inline bearer token is sent as such; repr never shows it."""
        settings = self.resolve(config(bearer_token="abc"))
        self.assertEqual(settings.credentials.authorization(), "Bearer abc")
        self.assertNotIn("abc", repr(settings))

    def test_basic_auth(self) -> None:
        """Username and password become basic auth."""
        settings = self.resolve(config(username="u", password="p"))
        expected = "Basic " + base64.b64encode(b"u:p").decode()
        self.assertEqual(settings.credentials.authorization(), expected)
        self.assertNotIn("Basic", repr(settings))

    def test_files_read_and_unreadable(self) -> None:
        """PEM files are read and remembered; one that is not PEM is refused naming its key."""
        ca = self.write("ca.pem", CA.cert_pem)
        cert = self.write("cert.pem", CLIENT.cert_pem)
        key = self.write("key.pem", CLIENT.key_pem)
        settings = self.resolve(config(cacert_file=ca, cert_file=cert, key_file=key))
        self.assertEqual(settings.pem.cert, CLIENT.cert_pem)
        self.assertEqual((settings.pem.ca_file, settings.pem.key_file), (ca, key))
        self.assertNotIn("PRIVATE", repr(settings))
        garbage = self.write("garbage.pem", "not pem")
        self.assert_config_error(config(cacert_file=garbage), "kubernetes.connection.cacertFile")

    def test_token_file_is_followed(self) -> None:
        """A replaced token file is read again; an unreadable one keeps the last token."""
        path = self.write("token", "first\n")
        settings = self.resolve(config(bearer_token_file=path))
        self.assertEqual(settings.credentials.authorization(), "Bearer first")
        replacement = self.write("token.new", "second-token")
        os.replace(replacement, path)
        self.assertEqual(settings.credentials.authorization(), "Bearer second-token")
        os.remove(path)
        self.assertEqual(settings.credentials.authorization(), "Bearer second-token")

    def test_missing_token_file(self) -> None:
        """An unreadable token file is refused naming kubernetes.connection.bearerTokenFile."""
        explanation = self.assert_config_error(
            config(bearer_token_file=os.path.join(self.dir, "absent")),
            "kubernetes.connection.bearerTokenFile",
        )
        self.assertIn("absent", explanation)


class InClusterTests(Files):
    def service_account(self) -> str:
        directory = os.path.join(self.dir, "sa")
        self.write("sa/token", "sa-token")
        self.write("sa/ca.crt", CA.cert_pem)
        self.write("sa/namespace", "gateways\n")
        return directory

    def test_discovered(self) -> None:
        """With default keys inside a pod, the service host, token, CA and namespace are used."""
        directory = self.service_account()
        settings = self.resolve(
            config(qps=20),
            environ={"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "6443"},
            service_account_dir=directory,
        )
        self.assertEqual(settings.base_url, "https://10.96.0.1:6443")
        self.assertEqual(settings.credentials.authorization(), "Bearer sa-token")
        self.assertEqual(settings.credentials.token_file, os.path.join(directory, "token"))
        self.assertEqual(settings.pem.ca, CA.cert_pem)
        self.assertEqual(settings.namespace, "gateways")
        self.assertEqual(settings.qps, 20)

    def test_ipv6_service_host(self) -> None:
        """An IPv6 service address is bracketed."""
        settings = self.resolve(
            config(),
            environ={"KUBERNETES_SERVICE_HOST": "fd00::1"},
            service_account_dir=self.service_account(),
        )
        self.assertEqual(settings.base_url, "https://[fd00::1]:443")

    def test_configured_keys_win(self) -> None:
        """Any ContainerSSH key set means no discovery."""
        settings = self.resolve(
            config(host="https://api.example:6443"),
            environ={"KUBERNETES_SERVICE_HOST": "10.96.0.1"},
            service_account_dir=self.service_account(),
        )
        self.assertEqual(settings.base_url, "https://api.example:6443")

    def test_missing_ca(self) -> None:
        """A pod without the service account's CA is a config error naming the connection."""
        self.write("sa/token", "t")
        self.assert_config_error(
            config(),
            "kubernetes.connection (in-cluster service account)",
            environ={"KUBERNETES_SERVICE_HOST": "10.96.0.1"},
            service_account_dir=os.path.join(self.dir, "sa"),
        )


class KubeconfigTests(Files):
    def kubeconfig(self, **changes: Any) -> str:
        self.write("certs/ca.crt", CA.cert_pem)
        document: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "main",
            "clusters": [
                {
                    "name": "c1",
                    "cluster": {
                        "server": "https://k8s.example:6443",
                        "certificate-authority": "certs/ca.crt",
                        "tls-server-name": "api.internal",
                    },
                },
                {"name": "c2", "cluster": {"server": "https://other:443/prefix"}},
            ],
            "users": [
                {
                    "name": "u1",
                    "user": {
                        "client-certificate-data": base64.b64encode(
                            CLIENT.cert_pem.encode()
                        ).decode(),
                        "client-key-data": base64.b64encode(CLIENT.key_pem.encode()).decode(),
                    },
                },
                {"name": "u2", "user": {"token": "kubeconfig-token"}},
                {"name": "plugin", "user": {"exec": {"command": "aws"}}},
            ],
            "contexts": [
                {"name": "main", "context": {"cluster": "c1", "user": "u1", "namespace": "ns1"}},
                {"name": "second", "context": {"cluster": "c2", "user": "u2"}},
                {"name": "plugin", "context": {"cluster": "c2", "user": "plugin"}},
            ],
        }
        document.update(changes)
        return self.write("config", yaml.safe_dump(document))

    def test_current_context(self) -> None:
        """The current context's cluster, CA (relative file), client cert data and namespace."""
        path = self.kubeconfig()
        settings = self.resolve(config(kubeconfig=path))
        self.assertEqual(settings.base_url, "https://k8s.example:6443")
        self.assertEqual(settings.server_name, "api.internal")
        self.assertEqual(settings.pem.ca_file, os.path.join(self.dir, "certs", "ca.crt"))
        self.assertEqual(settings.pem.cert, CLIENT.cert_pem)
        self.assertEqual(settings.pem.key, CLIENT.key_pem)
        self.assertEqual(settings.namespace, "ns1")

    def test_selected_context(self) -> None:
        """``context`` selects another context; a server's path is the API prefix."""
        settings = self.resolve(config(kubeconfig=self.kubeconfig(), context="second"))
        self.assertEqual(settings.base_url, "https://other:443/prefix")
        self.assertEqual(settings.credentials.authorization(), "Bearer kubeconfig-token")

    def test_unknown_context(self) -> None:
        """A context that is not in the file is refused naming kubernetes.connection.context."""
        self.assert_config_error(
            config(kubeconfig=self.kubeconfig(), context="nope"), "kubernetes.connection.context"
        )

    def test_exec_user_refused(self) -> None:
        """An exec plugin user is refused, naming the kubeconfig key and the user."""
        explanation = self.assert_config_error(
            config(kubeconfig=self.kubeconfig(), context="plugin"),
            "kubernetes.connection.kubeconfig: user 'plugin'",
        )
        self.assertIn("exec", explanation)

    def test_insecure_refused(self) -> None:
        """insecure-skip-tls-verify is refused."""
        path = self.kubeconfig(
            clusters=[
                {"name": "c1", "cluster": {"server": "https://x", "insecure-skip-tls-verify": True}}
            ]
        )
        explanation = self.assert_config_error(
            config(kubeconfig=path), "kubernetes.connection.kubeconfig: cluster 'c1'"
        )
        self.assertIn("insecure-skip-tls-verify", explanation)

    def test_other_keys_not_allowed(self) -> None:
        """A ContainerSSH connection key set alongside kubeconfig is refused naming that key."""
        self.assert_config_error(
            config(kubeconfig=self.kubeconfig(), bearer_token="x"),
            "kubernetes.connection.bearerToken",
        )

    def test_not_yaml(self) -> None:
        """A file that is not a kubeconfig is refused naming kubernetes.connection.kubeconfig."""
        path = self.write("broken", "- just\n- a list\n")
        self.assert_config_error(config(kubeconfig=path), "kubernetes.connection.kubeconfig")


class ApiClientTests(Files):
    def test_inline_pem_written_privately_and_removed(self) -> None:
        """Inline PEM is written to owner-only files for the client and removed on close."""
        settings = ClusterSettings(
            base_url="https://k8s.example",
            credentials=Credentials(),
            server_name="api.internal",
            pem=self.resolve(
                config(cacert=CA.cert_pem, cert=CLIENT.cert_pem, key=CLIENT.key_pem)
            ).pem,
        )
        cluster = thd_api_client(settings, self.dir, 4)
        configuration = cluster.api_client.configuration
        assert cluster.tls_dir is not None
        self.assertEqual(stat.S_IMODE(os.stat(cluster.tls_dir).st_mode), 0o700)
        for path in (configuration.ssl_ca_cert, configuration.cert_file, configuration.key_file):
            self.assertTrue(path.startswith(cluster.tls_dir))
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(configuration.key_file, encoding="utf-8") as f:
            self.assertEqual(f.read(), CLIENT.key_pem)
        self.assertEqual(configuration.tls_server_name, "api.internal")
        tls_dir = cluster.tls_dir
        cluster.thd_close()
        self.assertFalse(os.path.exists(tls_dir))

    def test_files_used_in_place(self) -> None:
        """PEM that came from files is given to the client as those files: nothing is written."""
        ca = self.write("ca.pem", CA.cert_pem)
        settings = self.resolve(config(host="https://k8s.example", cacert_file=ca))
        cluster = thd_api_client(settings, self.dir, 4)
        self.addCleanup(cluster.thd_close)
        self.assertIsNone(cluster.tls_dir)
        self.assertEqual(cluster.api_client.configuration.ssl_ca_cert, ca)
