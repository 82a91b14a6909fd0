"""The SSH server: Twisted Conch with ContainerSSH's behaviour.

- :mod:`~conch_container.ssh.factory`: the server factory (settings, host keys,
  algorithm offer, live connections);
- :mod:`~conch_container.ssh.transport`: one TCP connection (ids, lifecycle
  logging, login grace time);
- :mod:`~conch_container.ssh.userauth` and :mod:`~conch_container.ssh.checkers`:
  authentication through the configured authenticators;
- :mod:`~conch_container.ssh.realm` and :mod:`~conch_container.ssh.avatar`: the
  backend connection of a logged-in user;
- :mod:`~conch_container.ssh.connection`: channels, global requests, keepalives;
- :mod:`~conch_container.ssh.channel`, :mod:`~conch_container.ssh.session` and
  :mod:`~conch_container.ssh.sessionio`: session channels and their programs.
"""
