"""Finding the backend the configuration names among the installed plugins."""

from __future__ import annotations

import attrs
from twisted.plugin import getPlugins

from conch_container import plugins
from conch_container.config import AppConfig
from conch_container.interfaces import IBackendFactory

#: Backends ContainerSSH has that this version does not provide yet.
PLANNED = {"sshproxy": "the SSH proxy backend"}


class BackendNotAvailable(LookupError):
    """No installed plugin provides the configured backend."""


def backend_factories() -> dict[str, IBackendFactory]:
    """Every installed backend factory by name (the first found wins for a name)."""
    found: dict[str, IBackendFactory] = {}
    for factory in getPlugins(IBackendFactory, plugins):
        found.setdefault(factory.name, factory)
    return found


def find_backend_factory(name: str) -> IBackendFactory:
    """The factory for ``backend: name``.

    :raises BackendNotAvailable: with a message naming what is available.
    """
    factories = backend_factories()
    if name in factories:
        return factories[name]
    available = ", ".join(sorted(factories)) or "none"
    if name in PLANNED:
        raise BackendNotAvailable(
            f"backend: {PLANNED[name]} ({name!r}) is not available in this version "
            f"(available: {available})"
        )
    raise BackendNotAvailable(
        f"backend: no installed backend is called {name!r} (available: {available})"
    )


def check_backend_config(config: AppConfig) -> AppConfig:
    """``config`` checked by its backend's factory, with the backend's warnings added.

    :raises BackendNotAvailable: when no installed plugin provides the backend.
    :raises ~conch_container.config.ConfigError: naming the key path.
    """
    factory = find_backend_factory(config.backend)
    warnings = tuple(factory.check_config(config))
    return attrs.evolve(config, warnings=(*config.warnings, *warnings))
