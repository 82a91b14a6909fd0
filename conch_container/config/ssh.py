"""The ``ssh`` section: listener, algorithms, banner, host keys, keepalives."""

from __future__ import annotations

import attrs

from conch_container.config import values
from conch_container.config.kinds import (
    Duration,
    Int,
    ListOf,
    PemOrFile,
    Str,
    at_least,
    min_duration,
    not_empty,
)
from conch_container.config.schema import setting

DEFAULT_CIPHERS = (
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)
DEFAULT_KEX = (
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp521",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp256",
)
DEFAULT_MACS = ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-256")


def _keepalive_interval(value: float) -> str | None:
    return "must be 0 or at least 1s" if 0 < value < 1 else None


def algorithms() -> ListOf:
    """An SSH algorithm list: names kept as written, never empty."""
    return ListOf(Str(), not_empty, type_name="list of algorithm names")


@attrs.frozen
class SSHConfig:
    """The SSH server: where it listens and what it offers."""

    listen: str = setting(
        "listen",
        Str(values.host_port, type_name="host:port"),
        "0.0.0.0:2222",
        doc="Address and port to listen on.",
    )
    server_version: str = setting(
        "serverVersion",
        Str(values.server_version),
        "SSH-2.0-ContainerSSH",
        doc="Identification string sent to clients; `SSH-2.0-<software>[ <comment>]`.",
    )
    ciphers: tuple[str, ...] = setting(
        "ciphers",
        algorithms(),
        DEFAULT_CIPHERS,
        doc="Ciphers offered, in order of preference. Names the server does not implement "
        "are dropped with a warning at startup.",
    )
    kex: tuple[str, ...] = setting(
        "kex",
        algorithms(),
        DEFAULT_KEX,
        doc="Key-exchange algorithms offered, in order of preference.",
    )
    macs: tuple[str, ...] = setting(
        "macs",
        algorithms(),
        DEFAULT_MACS,
        doc="MAC algorithms offered, in order of preference.",
    )
    banner: str = setting(
        "banner",
        Str(),
        "",
        doc="Text sent to the client before authentication; may span several lines. Empty: none.",
    )
    hostkeys: tuple[str, ...] = setting(
        "hostkeys",
        ListOf(PemOrFile(), type_name="list of PEM texts or files"),
        (),
        doc="Host private keys (RSA, ECDSA, Ed25519, DSA), each as PEM text or a file name. "
        "Empty: an Ed25519 key is generated and written into the configuration file.",
    )
    client_alive_interval: float = setting(
        "clientAliveInterval",
        Duration(_keepalive_interval),
        0.0,
        doc="Interval between keepalive requests to the client; 0 disables them.",
    )
    client_alive_count_max: int = setting(
        "clientAliveCountMax",
        Int(at_least(1)),
        3,
        doc="Unanswered keepalive requests after which the connection is closed.",
    )
    login_grace_time: float = setting(
        "loginGraceTime",
        Duration(min_duration(1.0)),
        120.0,
        doc="Time a client has to authenticate after connecting.",
        extension=True,
    )
    max_auth_tries: int = setting(
        "maxAuthTries",
        Int(at_least(1)),
        6,
        doc="Authentication attempts allowed per connection (ContainerSSH: always 6).",
        extension=True,
    )
