"""Whole-configuration validation: only what is switched on, only the selected backend."""

from __future__ import annotations

import inspect
import os

from twisted.conch.ssh.keys import Key
from twisted.trial.unittest import SynchronousTestCase

from conch_container.config import ConfigError, parse_config, validate_config

from .material import ecdsa_pem, ed25519_pem, encrypted_pem, public_pem, rsa_pem, write

WEBHOOK_AUTH = {"password": {"method": "webhook", "webhook": {"url": "http://127.0.0.1:8080"}}}


def valid(**sections: object) -> dict[str, object]:
    """A minimal valid configuration with the given sections added or replaced."""
    return {"auth": WEBHOOK_AUTH, **sections}


class ValidationCase(SynchronousTestCase):
    def assertInvalid(self, data: dict[str, object], expected: str) -> None:
        """``data`` parses but fails validation with exactly ``expected``."""
        config = parse_config(data)
        with self.assertRaises(ConfigError) as raised:
            validate_config(config)
        self.assertEqual(str(raised.exception), expected)

    def assertValid(self, data: dict[str, object]) -> None:
        validate_config(parse_config(data))


class AuthValidationTests(ValidationCase):
    def test_minimal(self) -> None:
        """A password webhook and the defaults are a complete configuration."""
        self.assertValid(valid())

    def test_no_method(self) -> None:
        """At least one login method must be configured."""
        self.assertInvalid(
            {},
            "auth: no authentication method is configured: set auth.password.method or "
            "auth.publicKey.method",
        )

    def test_webhook_url(self) -> None:
        """A webhook method needs a valid http(s) URL."""
        self.assertInvalid(
            {"auth": {"publicKey": {"method": "webhook"}}},
            "auth.publicKey.webhook.url: must not be empty",
        )
        self.assertInvalid(
            {"auth": {"password": {"method": "webhook", "webhook": {"url": "ftp://x"}}}},
            "auth.password.webhook.url: must be a valid http:// or https:// URL",
        )

    def test_webhook_tls_pair(self) -> None:
        """For https, cert and key go together and must be PEM."""
        webhook = {"url": "https://auth", "cert": "-----BEGIN CERTIFICATE-----\n-----END X-----"}
        self.assertInvalid(
            {"auth": {"password": {"method": "webhook", "webhook": webhook}}},
            "auth.password.webhook: cert and key must be set together",
        )
        self.assertValid(
            {"auth": {"password": {"method": "webhook", "webhook": {**webhook, "url": "http://a"}}}}
        )

    def test_static(self) -> None:
        """The static method needs an existing users file."""
        self.assertInvalid(
            {"auth": {"publicKey": {"method": "static"}}},
            "auth.publicKey.static.usersFile: is required when method is static",
        )
        missing = os.path.abspath("missing-users.yaml")
        self.assertInvalid(
            {"auth": {"password": {"method": "static", "static": {"usersFile": missing}}}},
            f"auth.password.static.usersFile: file {missing} does not exist",
        )
        users = write(self.mktemp(), "users.yaml", "{}\n")
        self.assertValid(
            {"auth": {"password": {"method": "static", "static": {"usersFile": users}}}}
        )

    def test_authz(self) -> None:
        """An authz webhook needs its URL."""
        self.assertInvalid(
            valid(auth={**WEBHOOK_AUTH, "authz": {"method": "webhook"}}),
            "auth.authz.webhook.url: must not be empty",
        )


class HostKeyValidationTests(ValidationCase):
    def test_supported_keys(self) -> None:
        """RSA, Ed25519 and plain ECDSA host keys are accepted."""
        self.assertValid(valid(ssh={"hostkeys": [rsa_pem(), ed25519_pem(), ecdsa_pem()]}))

    def test_encrypted_key(self) -> None:
        """A passphrase-protected key is refused."""
        self.assertInvalid(
            valid(ssh={"hostkeys": [ed25519_pem(), encrypted_pem()]}),
            "ssh.hostkeys[1]: the key is encrypted; host keys must not have a passphrase",
        )

    def test_public_key(self) -> None:
        """A public key, PEM or OpenSSH format, is not a host key."""
        self.assertInvalid(
            valid(ssh={"hostkeys": [public_pem()]}),
            "ssh.hostkeys[0]: is a public key; a private host key is needed",
        )
        line = Key.fromString(ed25519_pem()).public().toString("openssh").decode()
        path = write(self.mktemp(), "host.key.pub", line + "\n")
        with self.assertRaises(ConfigError) as raised:
            parse_config(valid(ssh={"hostkeys": [path]}))
        self.assertEqual(raised.exception.key_path, "ssh.hostkeys[0]")
        self.assertEqual(
            raised.exception.problem, f"file {path} holds an OpenSSH public key line, not PEM text"
        )

    def test_garbage(self) -> None:
        """Text that is no key at all is refused."""
        config = parse_config(valid(ssh={"hostkeys": ["-----BEGIN NOTHING-----\nxx\n"]}))
        with self.assertRaises(ConfigError) as raised:
            validate_config(config)
        self.assertEqual(raised.exception.key_path, "ssh.hostkeys[0]")
        self.assertTrue(raised.exception.problem.startswith("not a valid private key"))


class BackendValidationTests(ValidationCase):
    def test_docker_image_required(self) -> None:
        """The Docker container needs an image."""
        self.assertInvalid(
            valid(docker={"execution": {"container": {"image": ""}}}),
            "docker.execution.container.image: an image is required",
        )

    def test_docker_connection_mode_commands(self) -> None:
        """Connection mode needs an idle and a shell command."""
        self.assertInvalid(
            valid(docker={"execution": {"idleCommand": []}}),
            "docker.execution.idleCommand: must not be empty in connection mode",
        )
        self.assertValid(valid(docker={"execution": {"idleCommand": [], "mode": "session"}}))

    def test_docker_session_restart_policy(self) -> None:
        """Session-mode containers may not restart."""
        host = {"restartpolicy": {"name": "always"}}
        self.assertInvalid(
            valid(docker={"execution": {"mode": "session", "host": host}}),
            "docker.execution.host.restartpolicy: containers cannot restart in session mode "
            "(use no restart policy)",
        )

    def test_docker_tls_all_or_nothing(self) -> None:
        """Docker TLS needs the CA certificate, certificate and key together."""
        self.assertInvalid(
            valid(docker={"connection": {"cert": "-----BEGIN CERTIFICATE-----"}}),
            "docker.connection: cacert, cert and key must be set together for TLS",
        )

    def test_only_selected_backend(self) -> None:
        """Sections of other backends are not validated."""
        kubernetes = {"connection": {"bearerTokenFile": "/nonexistent/token"}}
        self.assertValid(valid(kubernetes=kubernetes, sshproxy={"server": ""}))
        self.assertInvalid(
            valid(backend="kubernetes", kubernetes=kubernetes),
            "kubernetes.connection.bearerTokenFile: file /nonexistent/token does not exist",
        )
        self.assertInvalid(valid(backend="sshproxy"), "sshproxy.server: must not be empty")

    def test_kubernetes_kubeconfig(self) -> None:
        """A kubeconfig file must exist; a context needs a kubeconfig."""
        self.assertInvalid(
            valid(backend="kubernetes", kubernetes={"connection": {"kubeconfig": "/nonexistent"}}),
            "kubernetes.connection.kubeconfig: file /nonexistent does not exist",
        )
        self.assertInvalid(
            valid(backend="kubernetes", kubernetes={"connection": {"context": "prod"}}),
            "kubernetes.connection.context: only allowed with kubeconfig",
        )

    def test_sshproxy(self) -> None:
        """The SSH proxy needs a server, a user and fingerprints."""
        proxy = {"server": "10.0.0.1", "username": "u"}
        self.assertInvalid(
            valid(backend="sshproxy", sshproxy=proxy),
            "sshproxy.allowedHostKeyFingerprints: at least one fingerprint is required",
        )
        proxy["allowedHostKeyFingerprints"] = ["SHA256:abc"]  # type: ignore[assignment]
        self.assertValid(valid(backend="sshproxy", sshproxy=proxy))

    def test_kubernetes_pod(self) -> None:
        """The pod needs a namespace and containers with images."""
        pod: dict[str, object] = {"metadata": {"namespace": ""}}
        self.assertInvalid(
            valid(backend="kubernetes", kubernetes={"pod": pod}),
            "kubernetes.pod.metadata.namespace: must not be empty",
        )
        pod = {"spec": {"containers": [{"name": "shell"}]}}
        self.assertInvalid(
            valid(backend="kubernetes", kubernetes={"pod": pod}),
            "kubernetes.pod.spec.containers[0].image: an image is required",
        )
        self.assertInvalid(
            valid(backend="kubernetes", kubernetes={"pod": {"createMissingPods": True}}),
            "kubernetes.pod.createMissingPods: only allowed in persistent mode",
        )
        self.assertInvalid(
            valid(backend="kubernetes", kubernetes={"pod": {"mode": "persistent"}}),
            "kubernetes.pod.metadata.name: must name the pod in persistent mode",
        )
        named = {"mode": "persistent", "metadata": {"namespace": "users", "name": "alice"}}
        self.assertValid(valid(backend="kubernetes", kubernetes={"pod": named}))
        self.assertValid(
            valid(backend="kubernetes", kubernetes={"pod": {**named, "createMissingPods": True}})
        )
        self.assertValid(valid(backend="kubernetes"))

    def test_kubernetes_session_restart_policy(self) -> None:
        """In session mode a pod's program runs once: restartPolicy is empty or Never."""
        containers = [{"name": "shell", "image": "guest"}]
        for policy in ("", "Never"):
            spec = {"containers": containers, "restartPolicy": policy}
            self.assertValid(
                valid(backend="kubernetes", kubernetes={"pod": {"mode": "session", "spec": spec}})
            )
        spec = {"containers": containers, "restartPolicy": "OnFailure"}
        self.assertInvalid(
            valid(backend="kubernetes", kubernetes={"pod": {"mode": "session", "spec": spec}}),
            'kubernetes.pod.spec.restartPolicy: must be empty or "Never" in session mode',
        )

    def test_backend_checked_despite_configserver(self) -> None:
        """A configuration server URL does not exempt the backend section from the checks."""
        data = valid(
            configserver={"url": "http://127.0.0.1:8080/config"},
            docker={"execution": {"container": {"image": ""}}},
        )
        self.assertInvalid(data, "docker.execution.container.image: an image is required")

    def test_no_way_to_skip_backend(self) -> None:
        """validate_config has no switch that leaves the backend or security sections out."""
        self.assertEqual(list(inspect.signature(validate_config).parameters), ["config"])


class ServiceValidationTests(ValidationCase):
    def test_configserver_url(self) -> None:
        """A configured config server needs a valid URL."""
        self.assertInvalid(
            valid(configserver={"url": "not a url"}),
            "configserver.url: must be a valid http:// or https:// URL",
        )

    def test_metrics_tls(self) -> None:
        """An enabled HTTP server needs both certificate and key, or neither."""
        metrics = {"enable": True, "cert": "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----"}
        self.assertInvalid(valid(metrics=metrics), "metrics: cert and key must be set together")
        self.assertValid(valid(metrics={**metrics, "enable": False}))

    def test_audit_storage(self) -> None:
        """Enabled audit storage needs its directory, and S3 its credentials."""
        missing = os.path.abspath("no-audit-dir")
        self.assertInvalid(
            valid(audit={"enable": True, "storage": "file", "file": {"directory": missing}}),
            f"audit.file.directory: directory {missing} does not exist",
        )
        local = os.path.abspath(self.mktemp())
        os.makedirs(local)
        self.assertInvalid(
            valid(audit={"enable": True, "storage": "s3", "s3": {"local": local}}),
            "audit.s3.accessKey: must not be empty",
        )

    def test_geoip(self) -> None:
        """The MaxMind provider needs its database."""
        self.assertInvalid(
            valid(geoip={"provider": "maxmind", "maxmind-geoip2-file": "/nonexistent.mmdb"}),
            "geoip.maxmind-geoip2-file: file /nonexistent.mmdb does not exist",
        )

    def test_log_file(self) -> None:
        """Logging to a file needs a file name... which defaults, so it is always set."""
        self.assertValid(valid(log={"destination": "file", "file": ""}))
