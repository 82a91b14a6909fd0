"""The engine layer: everything that talks to a Docker engine, and nothing else.

- :mod:`.client`: where the engine is (``docker.connection``) and the docker-py
  client for it (TLS material, API version).
- :mod:`.api`: the blocking docker-py calls (``thd_*``) on the backend's
  bounded pool, and :class:`~.api.Engine`, the one reactor-side face of every
  engine call.
- :mod:`.containers`: the blocking calls on a whole container besides
  create, start and remove (resize, kill, stop, state, archive), mostly for
  session mode.
- :mod:`.upgrade`: a program's stream, an HTTP upgrade made from the reactor
  over the engine's endpoint (UNIX socket, TCP, TLS).
- :mod:`.stream`: that stream in the reactor (frames, PID handshake, EOF).
- :mod:`.errors`: :class:`~.errors.EngineError`, the one error of this layer,
  and the translation of docker-py's and requests' exceptions into it.

Nothing here knows about SSH sessions or the two modes.
"""
