"""Security policies (ContainerSSH's ``security`` section), enforced in front of any backend.

- :class:`~conch_container.security.filter.SecurityBackend`: the filter; wrap
  the configured backend with it and hand the result to the SSH server.
- :class:`~conch_container.security.policy.SecurityPolicy`: the decisions,
  built from a connection's ``security`` configuration.
- :class:`~conch_container.errors.RequestRejected`: what a refused
  request raises; the SSH layer answers it with a plain failure.
"""

from conch_container.errors import RequestRejected
from conch_container.security.filter import SecurityBackend, SecurityConnection, SecuritySession
from conch_container.security.policy import SecurityPolicy

__all__ = [
    "RequestRejected",
    "SecurityBackend",
    "SecurityConnection",
    "SecurityPolicy",
    "SecuritySession",
]
