"""The ``auth`` section: one block per SSH authentication method, plus authorization.

Each method block names its ``method`` (``""`` = disabled) and holds the
settings of every method it can use; only the selected one matters.
"""

# setting() returns an attrs field declaration, not a shared default value.
# ruff: noqa: RUF009

from __future__ import annotations

from typing import Any

import attrs

from conch_container.config.http import HTTPClientConfig
from conch_container.config.kinds import Bool, Choice, Duration, Section, Str, min_duration
from conch_container.config.oauth2 import OAuth2Config
from conch_container.config.schema import PLANNED, setting


@attrs.frozen
class AuthWebhookClientConfig(HTTPClientConfig):
    """An authentication webhook: the HTTP client block plus an overall deadline."""

    auth_timeout: float = setting(
        "authTimeout",
        Duration(min_duration(0.1)),
        60.0,
        doc="Overall time limit for one authentication, retries included.",
    )


@attrs.frozen
class KerberosConfig:
    """Kerberos authentication (password or GSSAPI)."""

    keytab: str = setting("keytab", Str(), "/etc/krb5.keytab", doc="Keytab file.")
    acceptor: str = setting(
        "acceptor",
        Str(),
        "any",
        doc="Acceptor principal: `any`, `host` (`host/<hostname>`) or `service/name`.",
    )
    enforce_username: bool = setting(
        "enforceUsername", Bool(), True, doc="Require the SSH username to match the principal."
    )
    credential_cache_path: str = setting(
        "credentialCachePath",
        Str(),
        "/tmp/krb5cc",
        doc="Path of the credential cache written into the container.",
    )
    config_path: str = setting(
        "configPath",
        Str(),
        "/etc/containerssh/krb5.conf",
        doc="Kerberos client configuration (password method only).",
    )
    clock_skew: float = setting("clockSkew", Duration(), 300.0, doc="Clock difference tolerated.")


@attrs.frozen
class StaticUsersConfig:
    """Users and credentials from a local file instead of a webhook."""

    users_file: str = setting(
        "usersFile",
        Str(),
        "",
        doc="File listing the users and their credentials for the `static` method; "
        "required when `method` is `static`.",
        extension=True,
    )


def _webhook() -> Any:
    return setting(
        "webhook",
        Section(AuthWebhookClientConfig),
        AuthWebhookClientConfig(),
        doc="The webhook, when `method` is `webhook`.",
    )


def _static() -> Any:
    return setting(
        "static",
        Section(StaticUsersConfig),
        StaticUsersConfig(),
        doc="The users file, when `method` is `static`.",
        extension=True,
    )


def _kerberos() -> Any:
    return setting(
        "kerberos",
        Section(KerberosConfig),
        KerberosConfig(),
        doc="Kerberos, when `method` is `kerberos`.",
        status=PLANNED,
    )


@attrs.frozen
class PasswordAuthConfig:
    """SSH ``password`` authentication."""

    method: str = setting(
        "method",
        Choice("", "webhook", "kerberos", "static"),
        "",
        doc='`webhook`, `static` (extension), `kerberos` (planned) or `""` (disabled).',
    )
    webhook: AuthWebhookClientConfig = _webhook()
    kerberos: KerberosConfig = _kerberos()
    static: StaticUsersConfig = _static()


@attrs.frozen
class PublicKeyAuthConfig:
    """SSH ``publickey`` authentication."""

    method: str = setting(
        "method",
        Choice("", "webhook", "static"),
        "",
        doc='`webhook`, `static` (extension) or `""` (disabled).',
    )
    webhook: AuthWebhookClientConfig = _webhook()
    static: StaticUsersConfig = _static()


@attrs.frozen
class KeyboardInteractiveAuthConfig:
    """SSH ``keyboard-interactive`` authentication (OAuth2)."""

    method: str = setting(
        "method", Choice("", "oauth2"), "", doc='`oauth2` or `""` (disabled).', status=PLANNED
    )
    oauth2: OAuth2Config = setting(
        "oauth2",
        Section(OAuth2Config),
        OAuth2Config(),
        doc="OAuth2, when `method` is `oauth2`.",
        status=PLANNED,
    )


@attrs.frozen
class GSSAPIAuthConfig:
    """SSH ``gssapi-with-mic`` authentication (Kerberos)."""

    method: str = setting(
        "method",
        Choice("", "kerberos"),
        "",
        doc='`kerberos` or `""` (disabled).',
        status=PLANNED,
    )
    kerberos: KerberosConfig = _kerberos()


@attrs.frozen
class AuthzConfig:
    """Authorization: a webhook asked after every successful authentication."""

    method: str = setting("method", Choice("", "webhook"), "", doc='`webhook` or `""` (disabled).')
    webhook: AuthWebhookClientConfig = _webhook()


@attrs.frozen
class AuthConfig:
    """How users authenticate: one block per SSH authentication method, and
    authorization after login. ``method: ""`` disables a method; at least one
    login method must be enabled.

    The ContainerSSH 0.4 shape (``auth.url`` and the HTTP client settings
    at the ``auth`` root, ``auth.password: true``, ``auth.pubkey: true``,
    ``auth.authTimeout``) is still read and converted into this shape, see
    :mod:`conch_container.config.legacy`.
    """

    password: PasswordAuthConfig = setting(
        "password", Section(PasswordAuthConfig), PasswordAuthConfig(), doc="Password login."
    )
    public_key: PublicKeyAuthConfig = setting(
        "publicKey", Section(PublicKeyAuthConfig), PublicKeyAuthConfig(), doc="Public-key login."
    )
    keyboard_interactive: KeyboardInteractiveAuthConfig = setting(
        "keyboardInteractive",
        Section(KeyboardInteractiveAuthConfig),
        KeyboardInteractiveAuthConfig(),
        doc="Keyboard-interactive login.",
        status=PLANNED,
    )
    gssapi: GSSAPIAuthConfig = setting(
        "gssapi",
        Section(GSSAPIAuthConfig),
        GSSAPIAuthConfig(),
        doc="GSSAPI login.",
        status=PLANNED,
    )
    authz: AuthzConfig = setting(
        "authz", Section(AuthzConfig), AuthzConfig(), doc="Authorization after login."
    )
