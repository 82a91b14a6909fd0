"""The Docker backend (``backend: docker``), connection mode.

:class:`DockerBackend` is created once per gateway; it gives each SSH
connection a :class:`DockerConnection` (one container) and each session
channel a :class:`DockerExecSession` (one exec in that container).
"""

from conch_container.backend.docker.backend import DockerBackend
from conch_container.backend.docker.connection import DockerConnection
from conch_container.backend.docker.session import DockerExecSession

__all__ = ["DockerBackend", "DockerConnection", "DockerExecSession"]
