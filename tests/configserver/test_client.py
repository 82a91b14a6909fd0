"""The configuration server client: request shape, answers, ContainerSSH's retry schedule."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.codes import Level
from conch_container.config import parse_config
from conch_container.config.http import HTTPClientConfig
from conch_container.errors import GENERIC_USER_MESSAGE, ContainerSSHError
from conch_container.metadata import ConnectionMetadata, FileValue, MetadataValue
from conch_container.testing.webhook import (
    DOWN,
    GARBAGE,
    AuthWebhookResource,
    WebhookUser,
    config_answer,
    memory_agent,
    slow,
    status,
)
from conch_container.webhook.client import WebhookClient
from conch_container.webhook.configserver import (
    CONFIG_UNAVAILABLE_USER_MESSAGE,
    ConfigServerClient,
    config_request,
)
from conch_container.webhook.connectionconfig import ConfigServerSource
from conch_container.webhook.retry import RetryPolicy
from tests.webhook.support import capturing_logger, codes, with_code

CID = "00112233445566778899aabbccddeeff"
URL = "http://config.test/config"
STATIC = {
    "auth": {"password": {"method": "webhook", "webhook": {"url": "http://127.0.0.1:8080"}}},
    "docker": {"execution": {"container": {"image": "static"}}},
    "configserver": {"url": URL},
}


def _metadata() -> ConnectionMetadata:
    return ConnectionMetadata(
        connection_id=CID,
        remote_address="192.0.2.7:50022",
        client_version="SSH-2.0-OpenSSH_9.2",
        username="alice",
        authenticated_username="alice-ops",
        metadata={"team": MetadataValue("ops"), "token": MetadataValue("t0k3n", sensitive=True)},
        environment={"LANG": MetadataValue("C"), "API_KEY": MetadataValue("k3y", sensitive=True)},
        files={
            "/etc/motd": FileValue(b"hi"),
            "/home/alice/.secret": FileValue(b"s3cr3t", sensitive=True),
        },
    )


def _users() -> dict[str, WebhookUser]:
    return {
        "alice-ops": WebhookUser(
            config={"docker": {"execution": {"container": {"image": "user"}}}},
            config_metadata={"tier": "gold"},
            config_environment={"FROM_CONFIG": "yes"},
            config_files={"/etc/user": b"u"},
        )
    }


class _Harness:
    def __init__(self, resource: AuthWebhookResource, **static: Any) -> None:
        self.clock = Clock()
        self.resource = resource
        self.agent = memory_agent(resource)
        self.log, self.events = capturing_logger()
        self.config = parse_config({**STATIC, **static})
        source = ConfigServerSource.from_config(
            self.config, reactor=self.clock, log=self.log, agent=self.agent
        )
        assert source is not None
        self.source = source

    def settings(self) -> defer.Deferred[Any]:
        return defer.Deferred.fromCoroutine(self.source.settings_for(_metadata(), self.log))


class RequestTests(SynchronousTestCase):
    def test_sensitive_left_out_by_default(self) -> None:
        """Without transmitSensitiveMetadata, sensitive metadata, variables and files stay home."""
        body = config_request(_metadata(), transmit_sensitive=False)
        self.assertEqual(
            body,
            {
                "username": "alice",
                "authenticatedUsername": "alice-ops",
                "remoteAddress": "192.0.2.7:50022",
                "connectionId": CID,
                "clientVersion": "SSH-2.0-OpenSSH_9.2",
                "metadata": {"team": {"value": "ops", "sensitive": False}},
                "environment": {"LANG": {"value": "C", "sensitive": False}},
                "files": {"/etc/motd": {"value": "aGk=", "sensitive": False}},
            },
        )

    def test_sensitive_sent_when_allowed(self) -> None:
        """With transmitSensitiveMetadata every entry is sent, marked as it is."""
        body = config_request(_metadata(), transmit_sensitive=True)
        self.assertEqual(body["metadata"]["token"], {"value": "t0k3n", "sensitive": True})
        self.assertEqual(body["environment"]["API_KEY"], {"value": "k3y", "sensitive": True})
        self.assertEqual(
            body["files"]["/home/alice/.secret"], {"value": "czNjcjN0", "sensitive": True}
        )

    def test_request_on_the_wire(self) -> None:
        """The POST goes to the URL as it is, as JSON, without the sensitive entries."""
        h = _Harness(AuthWebhookResource(_users()))
        self.successResultOf(h.settings())
        [request] = h.resource.requests
        self.assertEqual(request.path, "/config")
        self.assertEqual(request.headers["content-type"], "application/json")
        self.assertNotIn("token", request.body["metadata"])
        self.assertNotIn("t0k3n", repr(h.events))

    def test_transmit_setting_honoured(self) -> None:
        """configserver.transmitSensitiveMetadata: true sends the sensitive entries."""
        h = _Harness(
            AuthWebhookResource(_users()),
            configserver={"url": URL, "transmitSensitiveMetadata": True},
        )
        self.successResultOf(h.settings())
        self.assertIn("token", h.resource.requests[0].body["metadata"])


class AnswerTests(SynchronousTestCase):
    def test_config_and_metadata_merged(self) -> None:
        """The answer's config is merged over the static one; its metadata into the connection's."""
        h = _Harness(AuthWebhookResource(_users()))
        settings = self.successResultOf(h.settings())
        self.assertEqual(settings.config.docker.execution.container["Image"], "user")
        self.assertEqual(h.config.docker.execution.container["Image"], "static")
        self.assertEqual(settings.metadata.metadata["tier"], MetadataValue("gold"))
        self.assertEqual(settings.metadata.metadata["team"], MetadataValue("ops"))
        self.assertEqual(settings.metadata.environment["FROM_CONFIG"], MetadataValue("yes"))
        self.assertEqual(settings.metadata.files["/etc/user"], FileValue(b"u"))
        self.assertEqual(settings.metadata.authenticated_username, "alice-ops")
        self.assertEqual(codes(h.events).count("CONFIG_REQUEST"), 1)
        self.assertEqual(codes(h.events).count("CONFIG_RESPONSE"), 1)

    def test_unknown_user_gets_static(self) -> None:
        """An empty config leaves the static configuration as it is."""
        h = _Harness(AuthWebhookResource({}))
        settings = self.successResultOf(h.settings())
        self.assertEqual(settings.config, h.config)

    def test_invalid_config_refused(self) -> None:
        """An unusable config is BACKEND_CONFIG_ERROR, logged with the key path, not retried."""
        resource = AuthWebhookResource(_users())
        resource.inject(config_answer({"docker": {"execution": {"container": {"image": ""}}}}))
        h = _Harness(resource)
        failure = self.failureResultOf(h.settings(), ContainerSSHError)
        self.assertEqual(failure.value.code, messages.BACKEND_CONFIG_ERROR)
        self.assertEqual(failure.value.user_message, GENERIC_USER_MESSAGE)
        [logged] = with_code(h.events, "BACKEND_CONFIG_ERROR")
        self.assertEqual(logged["key"], "docker.execution.container.image")
        self.assertEqual(len(resource.requests), 1)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_fixed_key_refused(self) -> None:
        """A key the gateway cannot change per connection is refused by name."""
        resource = AuthWebhookResource(_users())
        resource.inject(config_answer({"ssh": {"listen": "0.0.0.0:1"}}))
        h = _Harness(resource)
        self.failureResultOf(h.settings(), ContainerSSHError)
        self.assertEqual(with_code(h.events, "BACKEND_CONFIG_ERROR")[0]["key"], "ssh.listen")

    def test_warnings_of_the_answer_logged(self) -> None:
        """What the answer brings that is passed on with a warning is logged with the connection."""
        resource = AuthWebhookResource(_users())
        resource.inject(config_answer({"docker": {"execution": {"container": {"Futurefield": 1}}}}))
        h = _Harness(resource)
        settings = self.successResultOf(h.settings())
        self.assertEqual(settings.config.docker.execution.container["Futurefield"], 1)
        [warning] = [
            e for e in h.events if e.get("key") == "docker.execution.container.Futurefield"
        ]
        self.assertEqual(warning["cs_level"], Level.WARNING)

    def test_log_level_of_config_is_explicit(self) -> None:
        """log.level may be changed for the connection."""
        resource = AuthWebhookResource(_users())
        resource.inject(config_answer({"log": {"level": "debug"}}))
        h = _Harness(resource)
        self.assertEqual(self.successResultOf(h.settings()).config.log.level, Level.DEBUG)


class RetryTests(SynchronousTestCase):
    def test_retries_every_10s_within_60s(self) -> None:
        """A down server is asked every 10 s; within 60 s the connection is refused."""
        resource = AuthWebhookResource(_users())
        resource.inject(DOWN)
        h = _Harness(resource)
        d = h.settings()
        for attempt in range(1, 6):
            self.assertEqual(len(resource.requests), attempt)
            self.assertNoResult(d)
            h.clock.advance(9.9)
            self.assertEqual(len(resource.requests), attempt)
            h.clock.advance(0.1)
        failure = self.failureResultOf(d, ContainerSSHError)
        self.assertEqual(h.clock.seconds(), 50)
        self.assertEqual(len(resource.requests), 6)
        self.assertEqual(failure.value.code, messages.CONFIG_BACKEND_ERROR)
        self.assertEqual(failure.value.user_message, CONFIG_UNAVAILABLE_USER_MESSAGE)
        backend = with_code(h.events, "CONFIG_BACKEND_ERROR")
        self.assertEqual([e["cs_level"] for e in backend], [Level.DEBUG] * 5 + [Level.ERROR])
        invalid = with_code(h.events, "CONFIG_INVALID_STATUS_CODE")
        self.assertEqual([e["statusCode"] for e in invalid], [503] * 6)
        self.assertEqual(codes(h.events).count("CONFIG_REQUEST"), 6)
        self.assertNotIn("CONFIG_RESPONSE", codes(h.events))
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_500_then_answer(self) -> None:
        """A 500 is retried 10 s later, and the good answer then taken."""
        resource = AuthWebhookResource(_users())
        resource.inject(status(500), count=1)
        h = _Harness(resource)
        d = h.settings()
        self.assertNoResult(d)
        h.clock.advance(10)
        self.assertEqual(self.successResultOf(d).config.docker.execution.container["Image"], "user")

    def test_garbage_retried(self) -> None:
        """An answer that is not JSON is a decode failure, retried until the budget is spent."""
        resource = AuthWebhookResource(_users())
        resource.inject(GARBAGE)
        h = _Harness(resource)
        d = h.settings()
        h.clock.pump([10] * 5)
        self.failureResultOf(d, ContainerSSHError)
        reasons = {e["reason"] for e in with_code(h.events, "CONFIG_BACKEND_ERROR")}
        self.assertEqual(reasons, {"HTTP_CLIENT_DECODE_FAILED"})

    def test_config_of_wrong_type_retried(self) -> None:
        """``config`` that is not an object is a malformed answer, retried."""
        resource = AuthWebhookResource(_users())
        resource.inject(config_answer([1, 2]), count=1)
        h = _Harness(resource)
        d = h.settings()
        self.assertNoResult(d)
        h.clock.advance(10)
        self.successResultOf(d)

    def test_slow_answer_times_out(self) -> None:
        """An answer slower than the per-call timeout (2 s) counts as a failure."""
        resource = AuthWebhookResource(_users(), clock=Clock())
        resource.inject(slow(5), count=1)
        h = _Harness(resource)
        d = h.settings()
        h.clock.advance(2)
        h.agent.flush()
        self.assertNoResult(d)
        self.assertEqual(
            with_code(h.events, "CONFIG_BACKEND_ERROR")[0]["reason"],
            "HTTP_CLIENT_CONNECTION_FAILED",
        )
        h.clock.advance(10)
        self.successResultOf(d)

    def test_policy_injectable(self) -> None:
        """The schedule is the client's to choose (tests shorten it)."""
        resource = AuthWebhookResource(_users())
        resource.inject(DOWN)
        clock = Clock()
        log, events = capturing_logger()
        client = ConfigServerClient(
            WebhookClient(HTTPClientConfig(url=URL), reactor=clock, agent=memory_agent(resource)),
            clock=clock,
            policy=RetryPolicy(budget=3.0, interval=1.0),
        )
        d = defer.Deferred.fromCoroutine(client.fetch(_metadata(), log))
        clock.advance(1)
        self.assertNoResult(d)
        clock.advance(1)
        self.failureResultOf(d, ContainerSSHError)
        self.assertEqual(len(resource.requests), 3)
        self.assertEqual(len(with_code(events, "CONFIG_BACKEND_ERROR")), 3)

    def test_cancel_stops_the_call(self) -> None:
        """Cancelling (the client left) stops the retries and the wait at once."""
        resource = AuthWebhookResource(_users())
        resource.inject(DOWN)
        h = _Harness(resource)
        d = h.settings()
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(h.clock.getDelayedCalls(), [])
        h.clock.advance(60)
        self.assertEqual(len(resource.requests), 1)
        self.assertNotIn("BACKEND_CONFIG_ERROR", codes(h.events))
