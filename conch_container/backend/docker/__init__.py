"""The Docker backend (``backend: docker``), in both of ContainerSSH's modes.

:class:`DockerBackend` is created once per gateway (thread pool, engine
clients, start-up removal of containers a previous run left behind); it
gives each SSH connection a :class:`DockerConnection`, which reaches the
engine, pulls the image, and removes whatever the connection made.

The package, layer by layer:

- :mod:`.engine`: the engine layer (clients, :class:`~.engine.api.Engine`
  with every call on the bounded pool, the program streams, the one error
  type); nothing there knows about SSH.
- :mod:`.connectionmode`: ``connection`` mode (the default), one container
  per connection and each channel's program an exec in it
  (:class:`DockerExecSession`), with authentication's files written through
  the guest agent.
- :mod:`.sessionmode`: ``session`` mode, each channel's program a container
  of its own.
- Shared by both modes: :mod:`.backend`, :mod:`.connection`,
  :mod:`.sessionbase` (a channel's program on Docker: its codes and its
  engine stream), :mod:`.execops`
  (exit codes, signals), :mod:`.agent` (the guest agent), :mod:`.pull`,
  :mod:`.reconcile` (start-up clean-up), and the create request
  (:mod:`.containerconfig`, from the container settings the configuration
  holds in Engine API JSON, :mod:`conch_container.config.dockerapi`).

What does not depend on Docker lives outside the package:
:mod:`conch_container.backend.programsession` (a channel's program: the
requests' state machine, stdin, resizing, closing once),
:mod:`conch_container.backend.program` (a request's argv),
:mod:`conch_container.backend.agentprotocol` (the guest agent's PID
handshake) and :mod:`conch_container.deferreds` (deadlines around calls that
cannot be cancelled).
"""

from conch_container.backend.docker.backend import DockerBackend
from conch_container.backend.docker.connection import DockerConnection
from conch_container.backend.docker.connectionmode.execsession import DockerExecSession

__all__ = ["DockerBackend", "DockerConnection", "DockerExecSession"]
