"""Loading the server's host keys from the configuration."""

from __future__ import annotations

from collections.abc import Sequence

from twisted.conch.ssh import keys

from conch_container import messages
from conch_container.errors import GENERIC_USER_MESSAGE, ContainerSSHError


def load_host_keys(pems: Sequence[str]) -> dict[bytes, keys.Key]:
    """Parse the PEM texts of ``ssh.hostkeys`` into private keys by SSH key type.

    As with ContainerSSH (Go's ``AddHostKey``), a later key of the same type
    replaces an earlier one.

    :raises ContainerSSHError: (``SSH_START_FAILED``) when there is no key, or a
        key cannot be read or is not a private key; the message names the key
        by its position, never by its content.
    """
    if not pems:
        raise ContainerSSHError(
            messages.SSH_START_FAILED,
            GENERIC_USER_MESSAGE,
            "no host keys configured (ssh.hostkeys is empty)",
        )
    private: dict[bytes, keys.Key] = {}
    for index, pem in enumerate(pems):
        where = f"ssh.hostkeys[{index}]"
        try:
            key = keys.Key.fromString(pem.encode("utf-8") if isinstance(pem, str) else pem)
        except keys.EncryptedKeyError:
            raise ContainerSSHError(
                messages.SSH_START_FAILED,
                GENERIC_USER_MESSAGE,
                f"{where}: the host key is encrypted with a passphrase, which is not supported",
            ) from None
        except Exception as e:
            raise ContainerSSHError(
                messages.SSH_START_FAILED,
                GENERIC_USER_MESSAGE,
                f"{where}: cannot read the host key ({type(e).__name__}: {e})",
            ) from None
        if key.isPublic():
            raise ContainerSSHError(
                messages.SSH_START_FAILED,
                GENERIC_USER_MESSAGE,
                f"{where}: this is a public key; a host key must be a private key",
            )
        private[key.sshType()] = key
    return private
