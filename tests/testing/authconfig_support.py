"""A users file for the test webhook server's tests."""

from __future__ import annotations

from conch_container.metadata import ConnectionMetadata

# A bcrypt hash of "secret" at the lowest cost (the tests check behaviour, not
# bcrypt's cost) and two ed25519 keys, shared with the static users' tests.
from tests.auth.test_static import HASH, KEY, OTHER_KEY

__all__ = ["HASH", "KEY", "METADATA", "OTHER_KEY", "USERS_YAML"]

USERS_YAML = f"""
users:
  alice:
    passwordHash: "{HASH}"
    authorizedKeys: ["{KEY} alice@laptop"]
    environment:
      TEAM: blue
      TOKEN: {{value: "t0ken", sensitive: true}}
    metadata: {{floor: "3"}}
    files:
      /home/user/motd: "hello\\n"
      /home/user/.secret: {{value: "s3cr3t", sensitive: true}}
    config:
      docker:
        execution:
          container:
            image: "alpine:3.20"
            env: ["A=b"]
          host:
            resources: {{memory: 1000000}}
        timeouts:
          containerStart: 1m30s
      security:
        maxSessions: 2
  bob:
    passwordHash: "{HASH}"
    authorize: false
"""

METADATA = ConnectionMetadata(
    connection_id="0123456789abcdef0123456789abcdef",
    remote_address="192.0.2.7:40000",
    client_version="SSH-2.0-OpenSSH_9.2",
    username="alice",
)
