"""Every section's defaults are ContainerSSH's (plus those of our extensions)."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from conch_container.codes import Level
from conch_container.config import AppConfig, parse_config
from conch_container.config.ssh import DEFAULT_HOST_KEY_ALGORITHMS

TLS_CURVES = ("x25519", "secp256r1", "secp384r1", "secp521r1")
TLS_CIPHERS = (
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
)
HTTP_CLIENT = {
    "url": "",
    "allow_redirects": False,
    "timeout": 2.0,
    "cacert": "",
    "cert": "",
    "key": "",
    "tls_version": "1.3",
    "curves": TLS_CURVES,
    "cipher": TLS_CIPHERS,
}
IDLE = ("/usr/bin/containerssh-agent", "wait-signal", "--signal", "INT", "--signal", "TERM")
SFTP = {"sftp": "/usr/lib/openssh/sftp-server"}
SSH_CIPHERS = (
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)
SSH_KEX = (
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp521",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp256",
)
SSH_MACS = ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-256")
# The gateway's own SSH server departs from ContainerSSH's lists (ssh-audit's
# guidance; docs/algorithms.md); the sshproxy client keeps them.
GATEWAY_KEX = ("mlkem768x25519-sha256", "curve25519-sha256", "curve25519-sha256@libssh.org")
GATEWAY_MACS = ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com")


def prefixed(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}.{name}": value for name, value in values.items()}


WEBHOOK = {**HTTP_CLIENT, "auth_timeout": 60.0}
KERBEROS = {
    "keytab": "/etc/krb5.keytab",
    "acceptor": "any",
    "enforce_username": True,
    "credential_cache_path": "/tmp/krb5cc",
    "config_path": "/etc/containerssh/krb5.conf",
    "clock_skew": 300.0,
}
SERVER = {
    "cert": "",
    "key": "",
    "clientcacert": "",
    "tls_version": "1.3",
    "curves": TLS_CURVES,
    "cipher": TLS_CIPHERS,
}

EXPECTED: dict[str, Any] = {
    # ssh
    "ssh.listen": "0.0.0.0:2222",
    "ssh.server_version": "SSH-2.0-ContainerSSH",
    "ssh.ciphers": SSH_CIPHERS,
    "ssh.kex": GATEWAY_KEX,
    "ssh.macs": GATEWAY_MACS,
    # Its meaning (no SHA-1 signature by default) is tested in tests.ssh.test_algorithms.
    "ssh.host_key_algorithms": DEFAULT_HOST_KEY_ALGORITHMS,
    "ssh.banner": "",
    "ssh.hostkeys": (),
    "ssh.client_alive_interval": 0.0,
    "ssh.client_alive_count_max": 3,
    "ssh.login_grace_time": 120.0,
    "ssh.max_auth_tries": 6,
    # configserver
    **prefixed("configserver", HTTP_CLIENT),
    "configserver.transmit_sensitive_metadata": False,
    # auth
    "auth.password.method": "",
    **prefixed("auth.password.webhook", WEBHOOK),
    **prefixed("auth.password.kerberos", KERBEROS),
    "auth.password.static.users_file": "",
    "auth.public_key.method": "",
    **prefixed("auth.public_key.webhook", WEBHOOK),
    "auth.public_key.static.users_file": "",
    "auth.keyboard_interactive.method": "",
    "auth.keyboard_interactive.oauth2.client_id": "",
    "auth.keyboard_interactive.oauth2.client_secret": "",
    "auth.keyboard_interactive.oauth2.provider": "",
    "auth.keyboard_interactive.oauth2.auth_timeout": 120.0,
    "auth.keyboard_interactive.oauth2.qr_code_clients": (),
    "auth.keyboard_interactive.oauth2.device_flow_clients": (),
    "auth.keyboard_interactive.oauth2.github.url": "https://github.com",
    "auth.keyboard_interactive.oauth2.github.apiurl": "https://api.github.com",
    "auth.keyboard_interactive.oauth2.github.tls_version": "1.3",
    "auth.keyboard_interactive.oauth2.github.enforce_username": True,
    "auth.keyboard_interactive.oauth2.github.require2_fa": False,
    "auth.keyboard_interactive.oauth2.github.timeout": 10.0,
    **prefixed("auth.keyboard_interactive.oauth2.oidc", HTTP_CLIENT),
    "auth.keyboard_interactive.oauth2.oidc.username_field": "sub",
    "auth.keyboard_interactive.oauth2.oidc.device_flow": False,
    "auth.keyboard_interactive.oauth2.oidc.authorization_code_flow": False,
    **prefixed("auth.keyboard_interactive.oauth2.generic.token_endpoint", HTTP_CLIENT),
    "auth.keyboard_interactive.oauth2.redirect.listen": "0.0.0.0:8080",
    "auth.keyboard_interactive.oauth2.redirect.webroot": "",
    "auth.gssapi.method": "",
    **prefixed("auth.gssapi.kerberos", KERBEROS),
    "auth.authz.method": "",
    **prefixed("auth.authz.webhook", WEBHOOK),
    # log
    "log.level": Level.NOTICE,
    "log.format": "ljson",
    "log.destination": "stdout",
    "log.file": "/var/log/containerssh/containerssh.log",
    "log.syslog.destination": "/dev/log",
    "log.syslog.facility": "auth",
    "log.syslog.tag": "ContainerSSH",
    "log.syslog.pid": False,
    # metrics, geoip, health
    "metrics.listen": "0.0.0.0:9100",
    **prefixed("metrics", SERVER),
    "metrics.enable": False,
    "metrics.path": "/metrics",
    "geoip.provider": "dummy",
    "geoip.maxmind_geoip2_file": "/var/lib/GeoIP/GeoIP2-Country.mmdb",
    "health.enable": False,
    "health.listen": "0.0.0.0:7000",
    **prefixed("health", SERVER),
    **prefixed("health.client", {**HTTP_CLIENT, "url": "http://127.0.0.1:7000/"}),
    # audit
    "audit.enable": False,
    "audit.format": "none",
    "audit.storage": "none",
    "audit.file.directory": "/var/log/audit",
    "audit.s3.local": "/var/lib/audit",
    "audit.s3.access_key": "",
    "audit.s3.secret_key": "",
    "audit.s3.bucket": "",
    "audit.s3.region": "",
    "audit.s3.endpoint": "",
    "audit.s3.cacert": "",
    "audit.s3.acl": "",
    "audit.s3.path_style_access": False,
    "audit.s3.upload_part_size": 5242880,
    "audit.s3.parallel_uploads": 20,
    "audit.s3.metadata.username": False,
    "audit.s3.metadata.ip": False,
    "audit.intercept.stdin": False,
    "audit.intercept.stdout": False,
    "audit.intercept.stderr": False,
    "audit.intercept.passwords": False,
    "audit.intercept.forwarding": False,
    # security
    "security.default_mode": "",
    "security.force_command": "",
    "security.env.mode": "",
    "security.env.allow": (),
    "security.env.deny": (),
    "security.command.mode": "",
    "security.command.allow": (),
    "security.shell.mode": "",
    "security.subsystem.mode": "",
    "security.subsystem.allow": (),
    "security.subsystem.deny": (),
    "security.tty.mode": "",
    "security.signal.mode": "",
    "security.signal.allow": (),
    "security.signal.deny": (),
    "security.forwarding.reverse_forwarding_mode": "disable",
    "security.forwarding.forwarding_mode": "disable",
    "security.forwarding.socket_forwarding_mode": "disable",
    "security.forwarding.socket_listen_mode": "disable",
    "security.forwarding.x11_forwarding_mode": "disable",
    "security.max_sessions": -1,
    # backend
    "backend": "docker",
    # docker
    "docker.connection.host": "unix:///var/run/docker.sock",
    "docker.connection.cacert": "",
    "docker.connection.cert": "",
    "docker.connection.key": "",
    "docker.execution.container": {"Image": "containerssh/containerssh-guest-image"},
    "docker.execution.host": None,
    "docker.execution.network": None,
    "docker.execution.platform": None,
    "docker.execution.containername": "",
    "docker.execution.auth": None,
    "docker.execution.mode": "connection",
    "docker.execution.idle_command": IDLE,
    "docker.execution.shell_command": ("/bin/bash",),
    "docker.execution.agent_path": "/usr/bin/containerssh-agent",
    "docker.execution.disable_agent": False,
    "docker.execution.subsystems": SFTP,
    "docker.execution.image_pull_policy": "IfNotPresent",
    "docker.execution.expose_auth_metadata_as_env": False,
    "docker.timeouts.container_start": 60.0,
    "docker.timeouts.container_stop": 60.0,
    "docker.timeouts.command_start": 60.0,
    "docker.timeouts.signal": 60.0,
    "docker.timeouts.window": 60.0,
    "docker.timeouts.http": 15.0,
    # kubernetes
    "kubernetes.connection.host": "kubernetes.default.svc",
    "kubernetes.connection.path": "/api",
    "kubernetes.connection.username": "",
    "kubernetes.connection.password": "",
    "kubernetes.connection.server_name": "",
    "kubernetes.connection.cert_file": "",
    "kubernetes.connection.key_file": "",
    "kubernetes.connection.cacert_file": "",
    "kubernetes.connection.cert": "",
    "kubernetes.connection.key": "",
    "kubernetes.connection.cacert": "",
    "kubernetes.connection.bearer_token": "",
    "kubernetes.connection.bearer_token_file": "",
    "kubernetes.connection.qps": 5.0,
    "kubernetes.connection.burst": 10,
    "kubernetes.pod.metadata": {"namespace": "default", "generateName": "containerssh-"},
    "kubernetes.pod.spec": {
        "containers": [{"name": "shell", "image": "containerssh/containerssh-guest-image"}]
    },
    "kubernetes.pod.console_container_number": 0,
    "kubernetes.pod.idle_command": IDLE,
    "kubernetes.pod.shell_command": ("/bin/bash",),
    "kubernetes.pod.agent_path": "/usr/bin/containerssh-agent",
    "kubernetes.pod.disable_agent": False,
    "kubernetes.pod.subsystems": SFTP,
    "kubernetes.pod.mode": "connection",
    "kubernetes.pod.create_missing_pods": False,
    "kubernetes.pod.expose_auth_metadata_as_env": {},
    "kubernetes.pod.expose_auth_metadata_as_labels": {},
    "kubernetes.pod.expose_auth_metadata_as_annotations": {},
    "kubernetes.timeouts.pod_start": 60.0,
    "kubernetes.timeouts.pod_stop": 60.0,
    "kubernetes.timeouts.command_start": 60.0,
    "kubernetes.timeouts.signal": 60.0,
    "kubernetes.timeouts.window": 60.0,
    "kubernetes.timeouts.http": 15.0,
    # sshproxy
    "sshproxy.server": "",
    "sshproxy.port": 22,
    "sshproxy.username_pass_through": False,
    "sshproxy.username": "",
    "sshproxy.password": "",
    "sshproxy.private_key": "",
    "sshproxy.allowed_host_key_fingerprints": (),
    "sshproxy.ciphers": SSH_CIPHERS,
    "sshproxy.kex": SSH_KEX,
    "sshproxy.macs": SSH_MACS,
    "sshproxy.host_key_algos": (
        "ssh-rsa-cert-v01@openssh.com",
        "ssh-dss-cert-v01@openssh.com",
        "ecdsa-sha2-nistp256-cert-v01@openssh.com",
        "ecdsa-sha2-nistp384-cert-v01@openssh.com",
        "ecdsa-sha2-nistp521-cert-v01@openssh.com",
        "ssh-ed25519-cert-v01@openssh.com",
        "ssh-rsa",
        "ssh-dss",
        "ssh-ed25519",
    ),
    "sshproxy.timeout": 60.0,
    "sshproxy.client_version": "SSH-2.0-ContainerSSH",
}

SECTIONS = [
    "ssh",
    "configserver",
    "auth",
    "log",
    "metrics",
    "geoip",
    "audit",
    "health",
    "security",
    "docker",
    "kubernetes",
    "sshproxy",
]


def lookup(config: object, path: str) -> Any:
    value = config
    for name in path.split("."):
        value = getattr(value, name)
    return value


class DefaultsTests(SynchronousTestCase):
    def test_every_default(self) -> None:
        """AppConfig() carries ContainerSSH's default for every key."""
        config = AppConfig()
        for path, expected in EXPECTED.items():
            self.assertEqual(lookup(config, path), expected, path)

    def test_empty_document(self) -> None:
        """An empty file (YAML null) and an empty mapping give the defaults."""
        self.assertEqual(parse_config(None), AppConfig())
        self.assertEqual(parse_config({}), AppConfig())

    def test_empty_sections(self) -> None:
        """A section present but empty (YAML null) means its defaults."""
        self.assertEqual(parse_config(dict.fromkeys(SECTIONS)), AppConfig())

    def test_empty_nested_sections(self) -> None:
        """Nested blocks given as null also keep their defaults."""
        data = {
            "docker": {"connection": None, "execution": None, "timeouts": None},
            "auth": {"password": None, "publicKey": {"webhook": None}},
            "log": {"syslog": None},
            "audit": {"s3": {"metadata": None}},
        }
        self.assertEqual(parse_config(data), AppConfig())

    def test_defaults_not_shared(self) -> None:
        """Each configuration has its own copy of the mutable defaults."""
        first, second = AppConfig(), AppConfig()
        first.docker.execution.container["Image"] = "changed"
        self.assertEqual(
            second.docker.execution.container["Image"], "containerssh/containerssh-guest-image"
        )
