"""Docker ``connection`` mode: one container per SSH connection, a program per channel.

The container itself is made and removed by
:class:`~conch_container.backend.docker.connection.DockerConnection`; here is
what runs in it: each channel's program as an exec
(:mod:`.execsession`), and authentication's files written through the guest
agent before the first program (:mod:`.files`).
"""
