"""The ``sshproxy`` section: accepted and validated; the backend is planned."""

from __future__ import annotations

import attrs

from conch_container.config import values
from conch_container.config.kinds import (
    Bool,
    Duration,
    Int,
    ListOf,
    PemOrFile,
    Str,
)
from conch_container.config.schema import fail, join, setting
from conch_container.config.ssh import (
    CONTAINERSSH_CIPHERS,
    CONTAINERSSH_KEX,
    CONTAINERSSH_MACS,
    algorithms,
)

DEFAULT_HOST_KEY_ALGORITHMS = (
    "ssh-rsa-cert-v01@openssh.com",
    "ssh-dss-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "ssh-ed25519-cert-v01@openssh.com",
    "ssh-rsa",
    "ssh-dss",
    "ssh-ed25519",
)


def _port(value: int) -> str | None:
    return None if 1 <= value <= 65535 else "must be between 1 and 65535"


@attrs.frozen
class SSHProxyConfig:
    """Forward each connection to another SSH server."""

    server: str = setting("server", Str(), "", doc="Backend SSH server host (required).")
    port: int = setting("port", Int(_port), 22, doc="Backend SSH server port.")
    username_pass_through: bool = setting(
        "usernamePassThrough", Bool(), False, doc="Log in with the user's own SSH username."
    )
    username: str = setting(
        "username", Str(), "", doc="Username on the backend (unless passed through)."
    )
    password: str = setting("password", Str(), "", doc="Password offered to the backend.")
    private_key: str = setting(
        "privateKey", PemOrFile(), "", doc="Private key offered to the backend (PEM or file)."
    )
    allowed_host_key_fingerprints: tuple[str, ...] = setting(
        "allowedHostKeyFingerprints",
        ListOf(Str()),
        (),
        doc="Accepted backend host key fingerprints (`SHA256:...`), required.",
    )
    # Towards the backend the lists stay ContainerSSH's: the server at the
    # other end may be older than the gateway's own defaults allow.
    ciphers: tuple[str, ...] = setting(
        "ciphers", algorithms(), CONTAINERSSH_CIPHERS, doc="Ciphers offered to the backend."
    )
    kex: tuple[str, ...] = setting(
        "kex", algorithms(), CONTAINERSSH_KEX, doc="Key exchanges offered to the backend."
    )
    macs: tuple[str, ...] = setting(
        "macs", algorithms(), CONTAINERSSH_MACS, doc="MACs offered to the backend."
    )
    host_key_algos: tuple[str, ...] = setting(
        "hostKeyAlgos",
        algorithms(),
        DEFAULT_HOST_KEY_ALGORITHMS,
        doc="Host key algorithms accepted from the backend.",
    )
    timeout: float = setting(
        "timeout", Duration(), 60.0, doc="Connect (with retries) and handshake time limit."
    )
    client_version: str = setting(
        "clientVersion",
        Str(values.client_version),
        "SSH-2.0-ContainerSSH",
        doc="Identification string sent to the backend.",
    )


def validate_sshproxy(config: SSHProxyConfig, path: str = "sshproxy") -> None:
    """The checks ContainerSSH makes when ``sshproxy`` is the selected backend.

    :raises ConfigError: naming the offending key.
    """
    if not config.server:
        fail(join(path, "server"), "must not be empty")
    if not config.username_pass_through and not config.username:
        fail(join(path, "username"), "must not be empty unless usernamePassThrough is set")
    if not config.allowed_host_key_fingerprints:
        fail(join(path, "allowedHostKeyFingerprints"), "at least one fingerprint is required")
    for index, fingerprint in enumerate(config.allowed_host_key_fingerprints):
        if not fingerprint.startswith("SHA256:"):
            fail(join(path, f"allowedHostKeyFingerprints[{index}]"), 'must start with "SHA256:"')
