"""Which ciphers, key exchanges, MACs and host key algorithms the server offers.

The configuration lists algorithms by their SSH names in order of preference,
as ContainerSSH's ``ssh.ciphers``/``ssh.kex``/``ssh.macs`` do. The ciphers and
MACs are the project's packet path's (:mod:`conch_container.ssh.crypto`):
Conch's own plus ``chacha20-poly1305@openssh.com``, the two AES-GCM ciphers
and the ``-etm@openssh.com`` MACs, so ContainerSSH's default lists are offered
as written. The key exchanges are Conch's, less those that need a moduli file.
A configured name the server does not implement is left out of the offer,
which keeps the configured order; what was left out is reported once, when
the server is built; a list with nothing usable left is a start-up error,
because a server that offers no cipher can accept no client.

Host key signature algorithms (``ssh.hostKeyAlgorithms``) work the same way,
except that a name is offered only when one of the host keys can sign with
it: the list names every key type, and the keys decide which apply. Conch
would offer every signature its keys can make, ``ssh-rsa`` (SHA-1) included;
the default list leaves SHA-1 out, so an RSA host key signs with
``rsa-sha2-512``/``rsa-sha2-256`` only unless the operator adds ``ssh-rsa``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import attrs
from twisted.conch.ssh import keys
from twisted.conch.ssh import transport as conch_transport

from conch_container import messages
from conch_container.config.ssh import (
    DEFAULT_CIPHERS,
    DEFAULT_HOST_KEY_ALGORITHMS,
    DEFAULT_KEX,
    DEFAULT_MACS,
)
from conch_container.errors import GENERIC_USER_MESSAGE, ContainerSSHError
from conch_container.log.logger import CodeLogger
from conch_container.ssh.crypto import suite

#: Key exchanges that need a moduli file (Diffie-Hellman group exchange). The
#: server does not load one, so they are never offered.
_NEEDS_MODULI = frozenset(
    {b"diffie-hellman-group-exchange-sha256", b"diffie-hellman-group-exchange-sha1"}
)


def implemented_ciphers() -> tuple[bytes, ...]:
    """The ciphers the transport can run: the AEAD ones and Conch's block ciphers."""
    return tuple(
        c
        for c in suite.implemented_ciphers()
        if c in suite.AEAD_CIPHERS or c in conch_transport.SSHServerTransport.supportedCiphers
    )


def implemented_key_exchanges() -> tuple[bytes, ...]:
    """The key exchanges this Conch build can run without a moduli file."""
    return tuple(
        k
        for k in conch_transport.SSHServerTransport.supportedKeyExchanges
        if k not in _NEEDS_MODULI
    )


def implemented_macs() -> tuple[bytes, ...]:
    """The MACs the transport can run: the encrypt-then-MAC ones and Conch's."""
    return suite.implemented_macs()


def implemented_host_key_algorithms() -> tuple[bytes, ...]:
    """The host key signature algorithms Conch's server can sign a key exchange with."""
    return tuple(conch_transport.SSHServerTransport.supportedPublicKeys)


def signature_algorithms(host_keys: Mapping[bytes, keys.Key]) -> frozenset[bytes]:
    """Every signature algorithm one of ``host_keys`` can make (an RSA key: three)."""
    return frozenset(
        algorithm for key in host_keys.values() for algorithm in key.supportedSignatureAlgorithms()
    )


@attrs.frozen
class AlgorithmOffer:
    """What the server offers in its KEXINIT, in order of preference.

    :ivar unsupported: the configured names that were left out because the
        server does not implement them, by kind (``ciphers``, ``kex``,
        ``macs``, ``hostKeyAlgorithms``); empty when all are implemented.
    """

    ciphers: tuple[bytes, ...]
    key_exchanges: tuple[bytes, ...]
    macs: tuple[bytes, ...]
    unsupported: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    #: Empty when the offer was built without host keys.
    host_key_algorithms: tuple[bytes, ...] = ()


def _select(
    kind: str,
    configured: Sequence[str],
    default: Sequence[str],
    implemented: Sequence[bytes],
    applicable: Collection[bytes] | None = None,
) -> tuple[tuple[bytes, ...], tuple[str, ...]]:
    # An empty list means the default, as Go's SSH library (ContainerSSH)
    # falls back to its own when given none.
    wanted = tuple(configured) or tuple(default)
    usable = set(implemented)
    offered: list[bytes] = []
    left_out: list[str] = []
    for name in wanted:
        encoded = name.encode("ascii", "replace")
        if encoded not in usable:
            if name not in left_out:
                left_out.append(name)
        elif encoded not in offered and (applicable is None or encoded in applicable):
            offered.append(encoded)
    if not offered:
        usable_here = [a for a in implemented if applicable is None or a in applicable]
        raise ContainerSSHError(
            messages.SSH_START_FAILED,
            GENERIC_USER_MESSAGE,
            f"none of the configured ssh.{kind} can be used by this server "
            f"(configured: {', '.join(wanted) or 'none'}; "
            f"usable: {', '.join(a.decode() for a in usable_here) or 'none'})",
            kind=kind,
        )
    return tuple(offered), tuple(left_out)


def select_algorithms(
    ciphers: Sequence[str],
    kex: Sequence[str],
    macs: Sequence[str],
    log: CodeLogger | None = None,
    host_key_algorithms: Sequence[str] = DEFAULT_HOST_KEY_ALGORITHMS,
    host_keys: Mapping[bytes, keys.Key] | None = None,
) -> AlgorithmOffer:
    """Build the offer from the configured lists.

    :param log: if given, one ``SSH_ALGORITHM_UNSUPPORTED`` event lists every
        configured name that was left out as not implemented.
    :param host_keys: the loaded host keys by key type; when given, the
        offer's :attr:`~AlgorithmOffer.host_key_algorithms` are the names of
        ``host_key_algorithms`` one of them can sign with.
    :raises ContainerSSHError: (``SSH_START_FAILED``) when a list has nothing
        this server implements, or no host key algorithm fits a host key.
    """
    offered_ciphers, bad_ciphers = _select(
        "ciphers", ciphers, DEFAULT_CIPHERS, implemented_ciphers()
    )
    offered_kex, bad_kex = _select("kex", kex, DEFAULT_KEX, implemented_key_exchanges())
    offered_macs, bad_macs = _select("macs", macs, DEFAULT_MACS, implemented_macs())
    offered_host_keys: tuple[bytes, ...] = ()
    bad_host_keys: tuple[str, ...] = ()
    if host_keys is not None:
        offered_host_keys, bad_host_keys = _select(
            "hostKeyAlgorithms",
            host_key_algorithms,
            DEFAULT_HOST_KEY_ALGORITHMS,
            implemented_host_key_algorithms(),
            signature_algorithms(host_keys),
        )
    unsupported = {
        kind: names
        for kind, names in (
            ("ciphers", bad_ciphers),
            ("kex", bad_kex),
            ("macs", bad_macs),
            ("hostKeyAlgorithms", bad_host_keys),
        )
        if names
    }
    if unsupported and log is not None:
        log.event(
            messages.SSH_ALGORITHM_UNSUPPORTED,
            "Not offering configured SSH algorithms this server does not implement: {algorithms}",
            algorithms="; ".join(
                f"{kind}: {', '.join(names)}" for kind, names in unsupported.items()
            ),
            unsupportedCiphers=list(bad_ciphers),
            unsupportedKex=list(bad_kex),
            unsupportedMacs=list(bad_macs),
            unsupportedHostKeyAlgorithms=list(bad_host_keys),
        )
    return AlgorithmOffer(
        offered_ciphers, offered_kex, offered_macs, unsupported, offered_host_keys
    )
