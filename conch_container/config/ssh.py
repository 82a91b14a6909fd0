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
from conch_container.config.preauth import (
    PenaltiesSection,
    PerSourcePenaltiesConfig,
    max_startups_problem,
    net_block_size_problem,
)
from conch_container.config.schema import setting

#: ContainerSSH 0.4's default lists (its ``config/ssh.go``), kept for the
#: documentation and for tests that prove they are still offered as written.
CONTAINERSSH_CIPHERS = (
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)
CONTAINERSSH_KEX = (
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp521",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp256",
)
CONTAINERSSH_MACS = ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-256")

# The gateway's own defaults follow ssh-audit's guidance: no SHA-1, no CBC, no
# NIST curves, and only encrypt-then-MAC MACs (the AEAD ciphers need none).
# docs/algorithms.md gives the reasons, name by name.
DEFAULT_CIPHERS = CONTAINERSSH_CIPHERS
DEFAULT_KEX = (
    "mlkem768x25519-sha256",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
)
DEFAULT_MACS = ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com")
#: Host key signature algorithms, in order of preference; each is offered
#: only when a host key of its type is configured. ``ssh-rsa`` and
#: ``ssh-dss`` (SHA-1 signatures) are left out.
DEFAULT_HOST_KEY_ALGORITHMS = (
    "ssh-ed25519",
    "rsa-sha2-512",
    "rsa-sha2-256",
    "ecdsa-sha2-nistp521",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp256",
)


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
        doc="Key-exchange algorithms offered, in order of preference. ContainerSSH's default "
        "is `curve25519-sha256@libssh.org` and the three `ecdh-sha2-nistp*`, which "
        "ssh-audit fails; see [algorithms.md](algorithms.md).",
    )
    macs: tuple[str, ...] = setting(
        "macs",
        algorithms(),
        DEFAULT_MACS,
        doc="MAC algorithms offered, in order of preference (unused with an AEAD cipher). "
        "ContainerSSH's default is `hmac-sha2-256-etm@openssh.com`, `hmac-sha2-256`.",
    )
    host_key_algorithms: tuple[str, ...] = setting(
        "hostKeyAlgorithms",
        algorithms(),
        DEFAULT_HOST_KEY_ALGORITHMS,
        doc="Host key signature algorithms offered, in order of preference; each only when "
        "a host key of its type is in `ssh.hostkeys`. Add `ssh-rsa` (or `ssh-dss`) for "
        "clients that only know SHA-1 signatures.",
        extension=True,
    )
    banner: str = setting(
        "banner",
        Str(),
        "",
        doc="Text sent to the client before authentication; may span several lines. Empty: none.",
    )
    hostkeys: tuple[str, ...] = setting(
        "hostkeys",
        ListOf(PemOrFile(private=True), type_name="list of PEM texts or files"),
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
    rekey_after_bytes: int = setting(
        "rekeyAfterBytes",
        Int(at_least(0)),
        1 << 30,
        doc="The server starts a new key exchange once this many bytes went one way under "
        "the same keys; 0: never for volume (the client may still start one).",
        extension=True,
    )
    rekey_after_seconds: float = setting(
        "rekeyAfterSeconds",
        Duration(_keepalive_interval),
        3600.0,
        doc="The server starts a new key exchange once the keys are this old; 0: never "
        "for time (the client may still start one).",
        extension=True,
    )
    max_auth_tries: int = setting(
        "maxAuthTries",
        Int(at_least(1)),
        6,
        doc="Authentication attempts allowed per connection (ContainerSSH: always 6).",
        extension=True,
    )
    max_startups: str = setting(
        "maxStartups",
        Str(max_startups_problem, type_name="start:rate:full"),
        "100:30:500",
        doc="Connections not yet authenticated: from `start` of them on, a new one is refused "
        "with probability `rate`%, rising to 100% at `full` (OpenSSH's `MaxStartups`; "
        "`N` alone means `N:100:N`).",
        extension=True,
    )
    per_source_max_startups: int = setting(
        "perSourceMaxStartups",
        Int(at_least(1)),
        32,
        doc="Connections not yet authenticated allowed from one source network "
        "(`perSourceNetBlockSize`); further ones are refused at once.",
        extension=True,
    )
    per_source_net_block_size: str = setting(
        "perSourceNetBlockSize",
        Str(net_block_size_problem, type_name="ipv4bits:ipv6bits"),
        "32:64",
        doc="Prefix lengths that group client addresses into one source network for "
        "`perSourceMaxStartups` and `perSourcePenalties` (OpenSSH's default is `32:128`).",
        extension=True,
    )
    per_source_penalties: PerSourcePenaltiesConfig = setting(  # noqa: RUF009 - frozen default
        "perSourcePenalties",
        PenaltiesSection(),
        PerSourcePenaltiesConfig(),
        doc="Penalties for client networks whose connections fail to log in.",
        extension=True,
    )
    max_channels: int = setting(
        "maxChannels",
        Int(at_least(1)),
        64,
        doc="Channels of any type one connection may have open at once; a further channel "
        "is refused with `OPEN_RESOURCE_SHORTAGE`. A protocol bound, independent of "
        "`security.maxSessions` (OpenSSH's `MaxSessions` is 10).",
        extension=True,
    )
    max_pending_requests: int = setting(
        "maxPendingRequests",
        Int(at_least(1)),
        32,
        doc="Channel requests one connection may have unanswered at once; a client that "
        "sends one more is disconnected.",
        extension=True,
    )
    max_env_variables: int = setting(
        "maxEnvVariables",
        Int(at_least(1)),
        128,
        doc="`env` requests a session channel accepts; further ones are answered with failure.",
        extension=True,
    )
    max_env_size: int = setting(
        "maxEnvSize",
        Int(at_least(1)),
        65536,
        doc="Bytes of names and values (UTF-8) the `env` requests of a session channel may "
        "carry together; a request beyond is answered with failure.",
        extension=True,
    )
    max_packet_size: int = setting(
        "maxPacketSize",
        Int(at_least(32768, "32768 (32 KiB)")),
        262144,
        doc="Largest data packet sent to a client, whatever larger size the client announces "
        "when it opens a channel (OpenSSH sends at most 256 KiB).",
        extension=True,
    )
    receive_window_size: int = setting(
        "receiveWindowSize",
        Int(at_least(32768, "32768 (32 KiB)")),
        2097152,
        doc="Bytes a client may send on a channel before the gateway grants it more (OpenSSH's "
        "server grants 2 MiB). Larger windows let uploads run at full speed over longer round "
        "trips; it is also the most a channel's input can hold in the gateway while the "
        "container does not read.",
        extension=True,
    )
    max_window_size: int = setting(
        "maxWindowSize",
        Int(at_least(32768, "32768 (32 KiB)")),
        16777216,
        doc="Bytes sent on a channel ahead of the client's acknowledgement, however large a "
        "window the client announces or adds; the rest of its window is left unused.",
        extension=True,
    )
