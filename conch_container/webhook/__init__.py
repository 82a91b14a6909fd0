"""Webhooks: the JSON-over-HTTP client and ContainerSSH's webhook documents.

:mod:`~conch_container.webhook.client` speaks HTTP (timeouts, redirects,
status and decoding rules, message codes), :mod:`~conch_container.webhook.tls`
turns the HTTP client block's TLS options into a Twisted TLS policy, and
:mod:`~conch_container.webhook.protocol` builds and reads the authentication
webhook's JSON.
"""
