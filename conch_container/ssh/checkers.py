"""Credential checkers: Twisted cred in front of our authenticators.

One :class:`~twisted.cred.checkers.ICredentialsChecker` per credential type,
built per connection (they carry the connection's metadata and logger). Each
turns a credential into an :class:`AuthenticatedUser`, the avatar id that the
realm receives, or fails with :class:`~twisted.cred.error.UnauthorizedLogin`:

- :class:`AuthenticationUnavailable` when the authenticator could not decide
  (webhook down); the user is told to try again later;
- a plain ``UnauthorizedLogin`` when the credentials were refused.

Public keys follow the order that suits a remote authenticator: the unsigned
"would you accept this key?" query is answered locally without asking it, and
a signed attempt has its signature verified locally *before* the
authenticator is asked, so the webhook sees each key once and only from a
client that holds the private key.
"""

from __future__ import annotations

import base64
from typing import Any

import attrs
from twisted.conch.error import ValidPublicKey
from twisted.conch.ssh import keys
from twisted.conch.ssh.common import getNS
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import ISSHPrivateKey, IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure
from zope.interface import implementer

from conch_container import messages
from conch_container.audit.recorder import DISABLED, ConnectionAudit
from conch_container.errors import ContainerSSHError
from conch_container.log.logger import CodeLogger
from conch_container.metadata import AuthResult, ConnectionMetadata


class AuthenticationUnavailable(UnauthorizedLogin):
    """The authenticator could not reach a decision; the login is refused for now."""


@attrs.frozen(eq=False)
class AuthenticatedUser:
    """The avatar id: who logged in, and everything authentication learned.

    Compared and hashed by identity (the metadata holds mappings), which is
    what cred needs from an avatar id.

    :ivar metadata: the connection metadata with the authenticator's (and the
        authorizer's) answers merged in.
    :ivar authtype: ``password`` or ``pubkey``, as ContainerSSH labels it.
    """

    metadata: ConnectionMetadata
    authtype: str


def _decode_username(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


class _AuthenticatorChecker:
    """What the password and public key checkers share: authz, merging, logging."""

    authtype = ""

    def __init__(
        self,
        authenticator: Any,
        authorizer: Any | None,
        base: ConnectionMetadata,
        log: CodeLogger,
        audit: ConnectionAudit = DISABLED,
    ) -> None:
        self._authenticator = authenticator
        self._authorizer = authorizer
        self._base = base
        self._log = log
        self._audit = audit

    def _metadata(self, username: bytes) -> ConnectionMetadata:
        return attrs.evolve(self._base, username=_decode_username(username))

    def _unavailable(
        self, log: CodeLogger, reason: str, failure: Failure | None = None
    ) -> AuthenticationUnavailable:
        log.event(
            messages.SSH_AUTH_UNAVAILABLE,
            "Authentication is unavailable: {reason}",
            authtype=self.authtype,
            reason=reason,
            failure=failure,
        )
        return AuthenticationUnavailable(reason)

    async def _ask(self, log: CodeLogger, what: str, f: Any, *args: Any) -> AuthResult:
        try:
            result = await maybeDeferred(f, *args)
        except ContainerSSHError as e:
            raise self._unavailable(log, f"{what}: {e.explanation}") from None
        except Exception:
            failure = Failure()
            raise self._unavailable(
                log, f"{what} failed: {failure.getErrorMessage()}", failure
            ) from None
        if not isinstance(result, AuthResult):
            raise self._unavailable(log, f"{what} returned {type(result).__name__}, not AuthResult")
        return result

    async def _decide(self, metadata: ConnectionMetadata, result: AuthResult) -> AuthenticatedUser:
        log = self._log.bind(username=metadata.username)
        if not result.success:
            log.event(
                messages.SSH_AUTH_FAILED,
                "Authentication failed for {username} ({authtype})",
                authtype=self.authtype,
            )
            raise UnauthorizedLogin("credentials refused")
        merged = metadata.merge(result)
        if self._authorizer is not None:
            verdict = await self._ask(log, "authorization", self._authorizer.authorize, merged)
            if not verdict.success:
                log.event(
                    messages.AUTHZ_FAILED,
                    "Authorization refused {username} ({authtype})",
                    authtype=self.authtype,
                    authenticatedUsername=merged.effective_username,
                )
                log.event(
                    messages.SSH_AUTH_FAILED,
                    "Authentication failed for {username} ({authtype}): not authorized",
                    authtype=self.authtype,
                )
                raise UnauthorizedLogin("not authorized")
            merged = merged.merge(verdict)
        log.event(
            messages.SSH_AUTH_SUCCESSFUL,
            "Authentication successful for {username} ({authtype})",
            authtype=self.authtype,
            authenticatedUsername=merged.effective_username,
        )
        return AuthenticatedUser(merged, self.authtype)

    async def _decide_recorded(
        self, metadata: ConnectionMetadata, ask: Any, record: Any
    ) -> AuthenticatedUser:
        """Ask (``ask()`` gives the authenticator's answer) and decide, recording the outcome.

        :param record: ``record(outcome, reason)`` writes the audit message:
            ``success``, ``failure``, or ``error`` when no authenticator could decide.
        """
        try:
            user = await self._decide(metadata, await ask())
        except AuthenticationUnavailable as e:
            record("error", str(e))
            raise
        except UnauthorizedLogin:
            record("failure", "")
            raise
        record("success", "")
        return user


@implementer(ICredentialsChecker)
class PasswordChecker(_AuthenticatorChecker):
    """Checks passwords with an :class:`~conch_container.interfaces.IPasswordAuthenticator`."""

    credentialInterfaces = (IUsernamePassword,)
    authtype = "password"

    def requestAvatarId(self, credentials: Any) -> Deferred[Any]:
        """Ask the authenticator (and the authorizer) about a username and password."""
        return Deferred.fromCoroutine(self._check(credentials))

    async def _check(self, credentials: Any) -> AuthenticatedUser:
        metadata = self._metadata(credentials.username)
        log = self._log.bind(username=metadata.username)
        password: bytes = credentials.password

        def record(outcome: str, reason: str) -> None:
            self._audit.password(outcome, metadata.username, password, reason)

        record("attempt", "")
        return await self._decide_recorded(
            metadata,
            lambda: self._ask(
                log,
                "password authenticator",
                self._authenticator.authenticate_password,
                metadata,
                password,
            ),
            record,
        )


def authorized_key_line(blob: bytes) -> str:
    """A public key blob in authorized_keys form without comment (``ssh-ed25519 AAAA...``)."""
    key_type = getNS(blob)[0].decode("ascii")
    return f"{key_type} {base64.b64encode(blob).decode('ascii')}"


@implementer(ICredentialsChecker)
class PublicKeyChecker(_AuthenticatorChecker):
    """Checks public keys with an :class:`~conch_container.interfaces.IPublicKeyAuthenticator`."""

    credentialInterfaces = (ISSHPrivateKey,)
    authtype = "pubkey"

    def requestAvatarId(self, credentials: Any) -> Deferred[Any]:
        """Answer a key query locally, or verify a signed attempt and ask the authenticator."""
        return Deferred.fromCoroutine(self._check(credentials))

    async def _check(self, credentials: Any) -> AuthenticatedUser:
        if not credentials.signature:
            # The client only asks whether this key would do. Saying yes
            # costs nothing: the real decision comes with the signed attempt,
            # and asking the authenticator twice per key would double the
            # load on it.
            raise ValidPublicKey()
        metadata = self._metadata(credentials.username)
        log = self._log.bind(username=metadata.username)
        line = ""
        try:
            line = authorized_key_line(credentials.blob)
            key = keys.Key.fromString(credentials.blob)
            valid = key.verify(credentials.signature, credentials.sigData)
        except Exception as e:
            valid = False
            reason = f"unusable key or signature ({type(e).__name__})"
        else:
            reason = "invalid signature"

        def record(outcome: str, reason: str) -> None:
            self._audit.public_key(outcome, metadata.username, line, reason)

        record("attempt", "")
        if not valid:
            record("failure", "")
            log.event(
                messages.SSH_AUTH_FAILED,
                "Authentication failed for {username} ({authtype}): {reason}",
                authtype=self.authtype,
                reason=reason,
            )
            raise UnauthorizedLogin(reason)
        return await self._decide_recorded(
            metadata,
            lambda: self._ask(
                log,
                "public key authenticator",
                self._authenticator.authenticate_public_key,
                metadata,
                line,
            ),
            record,
        )
