"""The ContainerSSH 0.4 ``auth`` shape, read and converted with a warning.

In 0.4 the authentication webhook was configured at the ``auth`` root::

    auth:
      url: http://127.0.0.1:8080
      timeout: 2s
      authTimeout: 60s
      password: true
      pubkey: true

ContainerSSH 0.5 and later still accept this and convert it (its
``internal/config/compat.go``): when ``auth.password.webhook.url`` is empty,
password and public-key authentication become ``method: webhook`` with the
root HTTP client settings; otherwise the new options win. Either way the
operator is warned. Unlike ContainerSSH, ``password: false`` or
``pubkey: false`` keep that method disabled, as they did in 0.4.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from conch_container import messages
from conch_container.config.auth import AuthConfig, AuthWebhookClientConfig
from conch_container.config.kinds import Bool, Section
from conch_container.config.schema import Context, fail, fields_of, join, parse_section

#: The keys of the 0.4 HTTP client block at the ``auth`` root.
_CLIENT_KEYS = frozenset(decl.key for _, decl in fields_of(AuthWebhookClientConfig))
_FLAG_KEYS = ("password", "pubkey")


def _legacy_key(key: object, value: object, ctx: Context) -> str | None:
    """The canonical legacy key ``key`` stands for, or ``None`` for a current key."""
    if not isinstance(key, str):
        return None
    candidates = {name.lower() if ctx.json else name: name for name in _CLIENT_KEYS}
    candidates.update({name: name for name in ("pubkey", "password")})
    found = candidates.get(key.lower() if ctx.json else key)
    if found == "password" and not isinstance(value, bool):
        return None  # ``password:`` as a mapping is the current shape
    return found


def _split(raw: Mapping[Any, Any], ctx: Context) -> tuple[dict[Any, Any], dict[str, Any]]:
    current: dict[Any, Any] = {}
    legacy: dict[str, Any] = {}
    for key, value in raw.items():
        name = _legacy_key(key, value, ctx)
        if name is None:
            current[key] = value
        else:
            legacy[name] = value
    return current, legacy


def _convert(config: AuthConfig, legacy: dict[str, Any], ctx: Context, path: str) -> AuthConfig:
    flags = {
        name: Bool().parse(legacy.pop(name), ctx, join(path, name), True)
        for name in _FLAG_KEYS
        if name in legacy
    }
    client = parse_section(AuthWebhookClientConfig, legacy, ctx, path)
    given = sorted([*legacy, *flags])
    if not client.url:
        ctx.warn(
            messages.CONFIG_DEPRECATED_KEY,
            join(path, given[0]),
            f"the ContainerSSH 0.4 authentication settings ({', '.join(given)}) have no "
            "effect without auth.url; remove them",
        )
        return config
    if config.password.webhook.url:
        ctx.warn(
            messages.CONFIG_AUTH_URL_DEPRECATED,
            join(path, "url"),
            "auth.url is the deprecated ContainerSSH 0.4 shape and is ignored because "
            "auth.password.webhook.url is set; remove the settings at the auth root",
        )
        return config
    password, public_key = config.password, config.public_key
    if flags.get("password", True):
        password = attrs.evolve(password, method="webhook", webhook=client)
    if flags.get("pubkey", True) and not public_key.method:
        public_key = attrs.evolve(public_key, method="webhook", webhook=client)
    ctx.warn(
        messages.CONFIG_AUTH_URL_DEPRECATED,
        join(path, "url"),
        "auth.url with the webhook settings at the auth root is the deprecated ContainerSSH "
        "0.4 shape; it was converted to auth.password and auth.publicKey with method: "
        "webhook. Move the settings to auth.password.webhook and auth.publicKey.webhook",
    )
    return attrs.evolve(config, password=password, public_key=public_key)


class AuthSection(Section):
    """The ``auth`` section kind: the current shape, plus the 0.4 shape converted."""

    def __init__(self) -> None:
        super().__init__(AuthConfig)

    def parse(self, raw: object, ctx: Context, path: str, base: Any) -> Any:
        if raw is None:
            return base
        if not isinstance(raw, Mapping):
            fail(path, "must be a mapping")
        current, legacy = _split(raw, ctx)
        config = parse_section(AuthConfig, current, ctx, path, base)
        if legacy:
            config = _convert(config, legacy, ctx, path)
        return config
