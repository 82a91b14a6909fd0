"""The audit log: a record of each connection, in ContainerSSH's formats.

- :mod:`.message`: the messages (ContainerSSH's types and payloads).
- :mod:`.codec`: the formats (``binary``, ``asciinema``) and their readers.
- :mod:`.storage`: where the streams go (``file``, ``s3``).
- :mod:`.recorder`: the taps on a connection that produce the messages.
"""
