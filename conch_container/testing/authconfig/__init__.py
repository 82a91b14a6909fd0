"""A test webhook server: authentication, authorization and configuration from a users file.

For trying a gateway setup without writing a webhook server, and for
operators' own tests. Not a production authentication server: it keeps its
users in one file, read once, and has no rate limiting beyond a cap on
password checks in flight.

- :class:`~conch_container.testing.authconfig.resource.AuthConfigResource`:
  the ``twisted.web`` resource answering ``/password``, ``/pubkey``,
  ``/authz`` and ``/config``;
- :func:`~conch_container.testing.authconfig.users.load_server_users`: its
  users file (the static users file, plus ``files``, ``authorize`` and a
  per-user ``config``);
- :func:`~conch_container.testing.authconfig.serve.webhook_server_service`:
  the resource served by the gateway's HTTP server, on the block
  :func:`~conch_container.testing.authconfig.serve.server_config` builds;
- ``conch-container test-webhook-server`` (or ``python -m
  conch_container.testing.authconfig``): all of it as a process.
"""

from conch_container.testing.authconfig.resource import CONFIG_PATH, AuthConfigResource
from conch_container.testing.authconfig.serve import server_config, webhook_server_service
from conch_container.testing.authconfig.users import (
    ServerUser,
    load_server_users,
    parse_server_users,
)

__all__ = [
    "CONFIG_PATH",
    "AuthConfigResource",
    "ServerUser",
    "load_server_users",
    "parse_server_users",
    "server_config",
    "webhook_server_service",
]
