"""Authenticators: ContainerSSH's webhook, and the embedded static users.

:func:`conch_container.auth.factory.build_authenticators` turns the ``auth``
section of the configuration into the authenticators the SSH layer calls.
"""
