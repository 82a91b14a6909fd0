"""Authentication sources that add environment variables: only variables a program can be given."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from conch_container.auth.users_file import StaticUsersError, parse_users
from conch_container.errors import AUTH_UNAVAILABLE_USER_MESSAGE, ContainerSSHError
from conch_container.metadata import MetadataValue
from conch_container.testing.webhook import AuthWebhookResource, WebhookUser
from tests.auth.test_webhook import KEY, _Harness, _metadata
from tests.webhook.support import with_code

HASH = "$2b$04$" + "a" * 53


def users_with_environment(environment: str) -> str:
    return f"users:\n  alice:\n    passwordHash: '{HASH}'\n    environment: {environment}\n"


class WebhookEnvironmentTests(SynchronousTestCase):
    def test_unusable_variable_is_a_backend_error(self) -> None:
        """An answer with ``LD_PRELOAD=/lib/x.so:`` in ``environment`` never authenticates.

        It is a malformed answer: retried every 10 s, then the documented
        ``AUTH_BACKEND_ERROR``, and the user is told authentication is unavailable.
        """
        user = WebhookUser(
            authorized_keys=(KEY,), environment={"LD_PRELOAD=/lib/x.so:": MetadataValue("v")}
        )
        resource = AuthWebhookResource({"alice": user})
        h = _Harness(resource)
        d = h.authenticator.authenticate_public_key(_metadata(), KEY)
        h.clock.pump([10] * 5)
        failure = self.failureResultOf(d, ContainerSSHError)
        self.assertEqual(failure.value.code.code, "AUTH_BACKEND_ERROR")
        self.assertEqual(failure.value.user_message, AUTH_UNAVAILABLE_USER_MESSAGE)
        self.assertEqual(len(resource.requests), 6)
        [decode_failure, *_] = with_code(h.events, "HTTP_CLIENT_DECODE_FAILED")
        self.assertIn("environment.LD_PRELOAD: its name contains '='", decode_failure["reason"])
        self.assertNotIn("/lib/x.so", repr(h.events))
        self.assertEqual(with_code(h.events, "AUTH_SUCCESSFUL"), [])


class UsersFileEnvironmentTests(SynchronousTestCase):
    def test_portable_names_load(self) -> None:
        """A users file whose environment has portable names loads."""
        users = parse_users(users_with_environment("{FOO: 'a=b'}"), "users.yaml")
        self.assertEqual(users["alice"].environment, {"FOO": MetadataValue("a=b")})

    def test_unusable_name_refused_at_load(self) -> None:
        """A name no program can be given is an error naming the file and key path."""
        for environment, where in [
            ("{'LD_PRELOAD=/x.so': v}", "users.alice.environment.LD_PRELOAD"),
            ("{BAD-NAME: v}", "users.alice.environment.BAD-NAME"),
            ('{FOO: "a\\0b"}', "users.alice.environment.FOO"),
        ]:
            with self.subTest(environment=environment):
                with self.assertRaises(StaticUsersError) as caught:
                    parse_users(users_with_environment(environment), "users.yaml")
                self.assertEqual(caught.exception.key, where)
                self.assertNotIn("/x.so", str(caught.exception))

    def test_metadata_keys_are_free_form(self) -> None:
        """``metadata`` keys need not be variable names."""
        text = f"users:\n  alice:\n    passwordHash: '{HASH}'\n    metadata: {{team.name: ops}}\n"
        self.assertIn("team.name", parse_users(text, "users.yaml")["alice"].metadata)
