"""What the SSH server needs of its configuration before it can start.

The factory refuses to start when no configured cipher, key exchange, MAC or
host key algorithm is one this server can use with its host keys. The same
check, run by ``check-config``, tells the operator before a deployment rather
than when the gateway starts.
"""

from __future__ import annotations

from conch_container.config.errors import ConfigError
from conch_container.config.hostkeys import generate_host_key
from conch_container.config.ssh import SSHConfig
from conch_container.errors import ContainerSSHError
from conch_container.ssh.algorithms import AlgorithmOffer, select_algorithms
from conch_container.ssh.hostkeys import load_host_keys


def check_ssh_offer(ssh: SSHConfig) -> AlgorithmOffer:
    """The algorithms the server would offer with ``ssh``, or a :class:`ConfigError`.

    Without ``ssh.hostkeys`` the gateway generates an Ed25519 key at start,
    so the host key algorithms are checked against one.

    :raises ConfigError: naming the list (``ssh.hostKeyAlgorithms``, ...) that
        leaves nothing the server can use, or ``ssh.hostkeys`` for a key it
        cannot load.
    """
    pems = list(ssh.hostkeys) or [generate_host_key()]
    try:
        host_keys = load_host_keys(pems)
    except ContainerSSHError as error:
        raise ConfigError("ssh.hostkeys", error.explanation) from None
    try:
        return select_algorithms(
            ssh.ciphers, ssh.kex, ssh.macs, None, ssh.host_key_algorithms, host_keys
        )
    except ContainerSSHError as error:
        kind = error.details.get("kind")
        raise ConfigError(f"ssh.{kind}" if kind else "ssh", error.explanation) from None
