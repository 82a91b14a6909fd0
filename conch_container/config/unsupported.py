"""ContainerSSH features this version reads from the file but does not implement yet.

Every ContainerSSH key parses, so that an existing file still reads. Parsing a
key is not implementing it, though, and a gateway that quietly ignores
``backend: sshproxy`` would let the operator believe users reach the
upstream server while every connection fails. So each such
feature has a row in :data:`NOT_YET_SUPPORTED`: the key that switches it on,
how to tell whether the file does, and whether the gateway may run without it:

- :data:`REFUSE`: running without the feature would change who gets in, what
  they may do, or what is recorded; loading fails with a
  :class:`~conch_container.config.ConfigError` naming the key;
- :data:`WARN`: running without it is safe (every connection's country is
  ``XX`` without GeoIP, say); loading succeeds with a
  :class:`~conch_container.config.ConfigWarning` under
  ``CONFIG_UNSUPPORTED_FEATURE``.

A file that merely mentions a feature while leaving it off
(``configserver.url: ""``, as in a ContainerSSH ``--dump-config`` output)
loads quietly. When a feature is built, its row goes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

import attrs

from conch_container import messages
from conch_container.config.app import AppConfig
from conch_container.config.errors import ConfigError, ConfigWarning

Action = Literal["refuse", "warn"]
#: The gateway cannot run without the feature: loading fails.
REFUSE: Final = "refuse"
#: The gateway can run without the feature: loading warns.
WARN: Final = "warn"


@attrs.frozen
class Unsupported:
    """One feature that is not built yet.

    :ivar key_path: the key that switches it on, as errors and warnings name it.
    :ivar enabled: whether a configuration switches it on.
    :ivar action: :data:`REFUSE` or :data:`WARN`.
    :ivar message: what is missing and what to do, for the operator.
    """

    key_path: str
    enabled: Callable[[AppConfig], bool]
    action: Action
    message: str


NOT_YET_SUPPORTED: tuple[Unsupported, ...] = (
    Unsupported(
        "backend",
        lambda config: config.backend == "sshproxy",
        REFUSE,
        "the SSH proxy backend (sshproxy) is not supported yet; use docker",
    ),
    Unsupported(
        "auth.password.method",
        lambda config: config.auth.password.method == "kerberos",
        REFUSE,
        "Kerberos password authentication is not supported yet; use webhook or static",
    ),
    Unsupported(
        "auth.keyboardInteractive.method",
        lambda config: bool(config.auth.keyboard_interactive.method),
        REFUSE,
        "keyboard-interactive (OAuth2) authentication is not supported yet; users could not "
        'log in this way. Set it to ""',
    ),
    Unsupported(
        "auth.gssapi.method",
        lambda config: bool(config.auth.gssapi.method),
        REFUSE,
        "GSSAPI (Kerberos) authentication is not supported yet; users could not log in this "
        'way. Set it to ""',
    ),
    Unsupported(
        "geoip.provider",
        lambda config: config.geoip.provider != "dummy",
        WARN,
        "GeoIP lookups are not supported yet; they only feed the metrics' country label, "
        "which is XX for every connection",
    ),
)


def enabled_features(config: AppConfig) -> tuple[Unsupported, ...]:
    """The rows of :data:`NOT_YET_SUPPORTED` that ``config`` switches on, in table order."""
    return tuple(row for row in NOT_YET_SUPPORTED if row.enabled(config))


def check_unsupported(config: AppConfig) -> tuple[ConfigWarning, ...]:
    """Refuse a configuration that needs a feature not built yet; list the ones it can lack.

    :return: a ``CONFIG_UNSUPPORTED_FEATURE`` warning for each :data:`WARN` row.
    :raises ConfigError: for the first :data:`REFUSE` row the configuration
        switches on, naming its key.
    """
    rows = enabled_features(config)
    for row in rows:
        if row.action == REFUSE:
            raise ConfigError(row.key_path, row.message)
    return tuple(
        ConfigWarning(messages.CONFIG_UNSUPPORTED_FEATURE, row.key_path, row.message)
        for row in rows
    )
