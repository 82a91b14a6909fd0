"""The backends that ship with conch-container, registered as plugins."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.plugin import IPlugin
from zope.interface import implementer

from conch_container.interfaces import IBackendFactory

if TYPE_CHECKING:
    from conch_container.backend.docker.backend import DockerBackend
    from conch_container.backend.kubernetes.backend import KubernetesBackend
    from conch_container.config import AppConfig, ConfigWarning
    from conch_container.log.logger import CodeLogger


@implementer(IPlugin, IBackendFactory)
class DockerBackendFactory:
    """``backend: docker``."""

    name = "docker"

    def check_config(self, config: AppConfig) -> tuple[ConfigWarning, ...]:
        # Every Docker setting, the Engine API structures included, is checked
        # by the configuration schema as the file is loaded: nothing is left.
        return ()

    def build(
        self, reactor: Any, log: CodeLogger, instance_id: str, config: AppConfig
    ) -> DockerBackend:
        # Imported here so that listing plugins does not import docker-py.
        from conch_container.backend.docker.backend import DockerBackend

        return DockerBackend(
            reactor,
            log,
            instance_id=instance_id,
            startup_config=config.docker,
        )


@implementer(IPlugin, IBackendFactory)
class KubernetesBackendFactory:
    """``backend: kubernetes`` (``connection`` mode; the others are refused at load)."""

    name = "kubernetes"

    def check_config(self, config: AppConfig) -> tuple[ConfigWarning, ...]:
        # The pod and connection settings are checked by the schema as the file
        # is loaded, and the modes not built yet by config/unsupported.py.
        return ()

    def build(
        self, reactor: Any, log: CodeLogger, instance_id: str, config: AppConfig
    ) -> KubernetesBackend:
        # Imported here so that listing plugins does not import the official client.
        from conch_container.backend.kubernetes.backend import KubernetesBackend

        return KubernetesBackend(
            reactor, log, instance_id=instance_id, startup_config=config.kubernetes
        )


docker = DockerBackendFactory()
kubernetes = KubernetesBackendFactory()
