"""Public test support for conch-container and for operators' own tests.

- :class:`~conch_container.testing.backend.FakeBackend`: an in-memory,
  deterministic container backend.
- :class:`~conch_container.testing.conformance.BackendConformanceMixin`: the
  conformance cases every backend (built-in or yours) must pass.
- :class:`~conch_container.testing.webhook.AuthWebhookResource`: the server
  side of the authentication webhook, in memory or on a real port.
- :mod:`~conch_container.testing.authconfig`: a test server for the
  authentication, authorization and configuration webhooks, driven by a
  users file (``conch-container test-webhook-server``).
- :mod:`~conch_container.testing.threads`: thread-pool fakes for unit tests.
"""

from conch_container.testing.backend import FakeBackend
from conch_container.testing.conformance import BackendConformanceMixin
from conch_container.testing.webhook import AuthWebhookResource, WebhookUser

__all__ = ["AuthWebhookResource", "BackendConformanceMixin", "FakeBackend", "WebhookUser"]
