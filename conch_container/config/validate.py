"""Whole-configuration checks: required settings, settings that go together, files.

Parsing already checked each value on its own (types, ranges, choices).
:func:`validate_config` checks what depends on other settings or on the
machine, as ContainerSSH's ``Validate`` does: only for the features that are
switched on, and only for the selected backend's section.
"""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import UnsupportedAlgorithm
from twisted.conch.ssh import keys

from conch_container.config.app import AppConfig
from conch_container.config.audit import AuditConfig
from conch_container.config.auth import AuthConfig, KerberosConfig, StaticUsersConfig
from conch_container.config.docker import validate_docker
from conch_container.config.http import HTTPClientConfig, HTTPServerConfig
from conch_container.config.kubernetes import validate_kubernetes
from conch_container.config.schema import fail, item, join
from conch_container.config.ssh import SSHConfig
from conch_container.config.sshproxy import validate_sshproxy
from conch_container.config.values import http_url, is_pem


def validate_config(config: AppConfig) -> None:
    """Check a parsed configuration as a whole, the selected backend's section included.

    :raises ConfigError: for the first problem found, naming its key.
    """
    validate_ssh(config.ssh)
    validate_auth(config.auth)
    if config.configserver.url:
        validate_http_client(config.configserver, "configserver")
    log = config.log
    if log.destination == "file" and not log.file:
        fail("log.file", "must not be empty when destination is file")
    if log.destination == "syslog" and not log.syslog.destination:
        fail("log.syslog.destination", "must not be empty when destination is syslog")
    if config.metrics.enable:
        validate_http_server(config.metrics, "metrics")
    if config.health.enable:
        validate_http_server(config.health, "health")
    if config.geoip.provider == "maxmind":
        _require_file(config.geoip.maxmind_geoip2_file, "geoip.maxmind-geoip2-file")
    if config.audit.enable:
        validate_audit(config.audit)
    if config.backend == "docker":
        validate_docker(config.docker)
    elif config.backend == "kubernetes":
        validate_kubernetes(config.kubernetes)
    elif config.backend == "sshproxy":
        validate_sshproxy(config.sshproxy)


def validate_ssh(ssh: SSHConfig, path: str = "ssh") -> None:
    """Every host key must be an unencrypted private key of a supported type.

    Plain ECDSA keys are accepted (ContainerSSH rejects them by oversight).
    """
    for index, text in enumerate(ssh.hostkeys):
        where = item(join(path, "hostkeys"), index)
        if "PUBLIC KEY-----" in text:
            fail(where, "is a public key; a private host key is needed")
        try:
            key = keys.Key.fromString(text.encode("utf-8"))
        except keys.EncryptedKeyError:
            fail(where, "the key is encrypted; host keys must not have a passphrase")
        # Besides BadKeyError, a damaged key makes the code Twisted's parser
        # calls fail as it will: struct.error for an OpenSSH key cut short,
        # the crypto library's UnsupportedAlgorithm for a curve or algorithm
        # it does not know. Each is just an unreadable host key.
        except (
            keys.BadKeyError,
            ValueError,
            TypeError,
            IndexError,
            struct.error,
            UnsupportedAlgorithm,
        ) as error:
            fail(where, f"not a valid private key ({error or 'unrecognised format'})")
        if key.isPublic():
            fail(where, "is a public key; a private host key is needed")


def validate_http_client(client: HTTPClientConfig, path: str, *, required: bool = True) -> None:
    """A client block that is in use: a valid URL; for HTTPS, coherent TLS files."""
    if not client.url:
        if required:
            fail(join(path, "url"), "must not be empty")
        return
    problem = http_url(client.url)
    if problem:
        fail(join(path, "url"), problem)
    if not client.url.startswith("https:"):
        return
    if bool(client.cert) != bool(client.key):
        fail(path, "cert and key must be set together")
    for key in ("cacert", "cert", "key"):
        value = getattr(client, key)
        if value and not is_pem(value):
            fail(join(path, key), "must be PEM text or the name of a PEM file")


def validate_http_server(server: HTTPServerConfig, path: str) -> None:
    """A server block that is in use: TLS needs both a certificate and a key."""
    if bool(server.cert) != bool(server.key):
        fail(path, "cert and key must be set together")
    for key in ("cert", "key", "clientcacert"):
        value = getattr(server, key)
        if value and not is_pem(value):
            fail(join(path, key), "must be PEM text or the name of a PEM file")


def _require_file(filename: str, path: str) -> None:
    if not filename:
        fail(path, "must not be empty")
    if not os.path.isfile(filename):
        fail(path, f"file {filename} does not exist")


def _require_directory(directory: str, path: str) -> None:
    if not directory:
        fail(path, "must not be empty")
    if not os.path.isdir(directory):
        fail(path, f"directory {directory} does not exist")


def _validate_static(static: StaticUsersConfig, path: str) -> None:
    if not static.users_file:
        fail(join(path, "usersFile"), "is required when method is static")
    _require_file(static.users_file, join(path, "usersFile"))


def _validate_kerberos(kerberos: KerberosConfig, path: str) -> None:
    _require_file(kerberos.keytab, join(path, "keytab"))


def validate_auth(auth: AuthConfig, path: str = "auth") -> None:
    """At least one login method, and complete settings for each one selected."""
    enabled = [
        auth.password.method,
        auth.public_key.method,
        auth.keyboard_interactive.method,
        auth.gssapi.method,
    ]
    if not any(enabled):
        fail(
            path,
            "no authentication method is configured: set auth.password.method or "
            "auth.publicKey.method",
        )
    for key, block in (("password", auth.password), ("publicKey", auth.public_key)):
        where = join(path, key)
        if block.method == "webhook":
            validate_http_client(block.webhook, join(where, "webhook"))
        elif block.method == "static":
            _validate_static(block.static, join(where, "static"))
    if auth.password.method == "kerberos":
        _validate_kerberos(auth.password.kerberos, join(path, "password.kerberos"))
    if auth.gssapi.method == "kerberos":
        _validate_kerberos(auth.gssapi.kerberos, join(path, "gssapi.kerberos"))
    if auth.keyboard_interactive.method == "oauth2":
        oauth2 = auth.keyboard_interactive.oauth2
        where = join(path, "keyboardInteractive.oauth2")
        for key, value in (("clientId", oauth2.client_id), ("clientSecret", oauth2.client_secret)):
            if not value:
                fail(join(where, key), "must not be empty")
        if not oauth2.provider:
            fail(join(where, "provider"), "must not be empty")
    if auth.authz.method == "webhook":
        validate_http_client(auth.authz.webhook, join(path, "authz.webhook"))


def validate_audit(audit: AuditConfig, path: str = "audit") -> None:
    """An enabled audit log needs a usable storage."""
    if audit.storage == "file":
        _require_directory(audit.file.directory, join(path, "file.directory"))
    elif audit.storage == "s3":
        s3 = audit.s3
        where = join(path, "s3")
        _require_directory(s3.local, join(where, "local"))
        for key, value in (
            ("accessKey", s3.access_key),
            ("secretKey", s3.secret_key),
            ("bucket", s3.bucket),
        ):
            if not value:
                fail(join(where, key), "must not be empty")
        if s3.endpoint:
            problem = http_url(s3.endpoint)
            if problem:
                fail(join(where, "endpoint"), problem)
        if s3.cacert and not is_pem(s3.cacert):
            # Inline only, as in ContainerSSH: botocore gets it through a file we write.
            fail(join(where, "cacert"), "must be PEM text (a CA certificate)")
