"""The engine layer: everything that talks to a Docker engine, and nothing else.

- :mod:`.client`: where the engine is (``docker.connection``) and the docker-py
  client for it (TLS material, API version).
- :mod:`.api`: the blocking docker-py calls (``thd_*``) on the backend's
  bounded pool, and :class:`~.api.Engine`, their reactor-side face.
- :mod:`.containers`: the container-level calls session mode needs besides
  create/start/remove (attach, resize, kill, stop, state, archive).
- :mod:`.upgrade`: a program's stream, an HTTP upgrade made from the reactor
  over the engine's endpoint (UNIX socket, TCP, TLS).
- :mod:`.stream`: that stream in the reactor (frames, PID handshake, EOF).
- :mod:`.errors`: :class:`~.errors.EngineError`, the one error of this layer.

Nothing here knows about SSH sessions or the two modes.
"""
