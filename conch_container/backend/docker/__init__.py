"""The Docker backend (``backend: docker``), in both of ContainerSSH's modes.

:class:`DockerBackend` is created once per gateway (thread pool, engine
clients, start-up removal of containers a previous run left behind); it
gives each SSH connection a :class:`DockerConnection`, which pulls the image
and removes whatever the connection made.

- ``connection`` mode (the default): the connection has one container, and
  each session channel's program is a :class:`DockerExecSession`, an exec in
  it, run through the guest agent (:mod:`.agent`, :mod:`.files`).
- ``session`` mode: each session channel's program is a
  :class:`~conch_container.backend.docker.sessionmode.DockerContainerSession`,
  a container of its own (:mod:`.sessionmode`, :mod:`.sessioncontainer`,
  :mod:`.sessionops`, :mod:`.containerops`, :mod:`.archive`).

What both kinds of session share is :mod:`.sessionbase`; the engine calls
(run on the backend's pool) are :mod:`.engine`, the streams in the reactor
:mod:`.stream`, exit codes and signals :mod:`.execops`; the container
configuration :mod:`.containerconfig` and :mod:`.apischema`, pulls
:mod:`.pull`, and clean-up at start-up :mod:`.reconcile`. Deadlines around
calls that cannot be cancelled are :mod:`conch_container.deferreds`.
"""

from conch_container.backend.docker.backend import DockerBackend
from conch_container.backend.docker.connection import DockerConnection
from conch_container.backend.docker.session import DockerExecSession

__all__ = ["DockerBackend", "DockerConnection", "DockerExecSession"]
