"""The ``ssh-userauth`` service: ContainerSSH's limits and messages on Conch's server.

Differences from :class:`twisted.conch.ssh.userauth.SSHUserAuthServer`:

- the portal is built per connection (:meth:`ContainerSSHFactory.portal_for`),
  so checkers and realm know the connection they serve;
- ``ssh.maxAuthTries`` failed attempts end the connection (Conch: 20), and the
  login grace time is enforced by the transport from the moment of TCP
  connect (Conch: 10 hours from the start of this service);
- ``ssh.banner`` is sent as ``SSH_MSG_USERAUTH_BANNER`` when the service starts;
- when the authenticator cannot decide, the client gets a banner saying
  authentication is unavailable before the failure reply;
- methods that are not configured are logged (``AUTH_DISABLED``,
  ``AUTH_NOT_SUPPORTED``) and answered with failure;
- requests are handled one at a time: a client may send the next request
  before the previous one is answered (RFC 4252, section 5), and running two
  webhook checks, or two logins, in parallel for one connection is never wanted;
- only a few requests may wait for their turn (:data:`MAX_QUEUED_REQUESTS`,
  :data:`MAX_QUEUED_BYTES`): a client that sends more ahead of the answers is
  disconnected (``SSH_AUTH_TOO_MANY_PENDING``), so one connection that never
  logs in cannot pile up requests behind a slow check;
- requests that carry no credential to check (``none``, and public key
  queries without a signature) do not count as attempts, but are limited to
  :data:`QUERIES_PER_ATTEMPT` times ``ssh.maxAuthTries`` per connection, so a
  client cannot probe for ever without reaching a limit.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.conch import error
from twisted.conch.ssh import userauth
from twisted.conch.ssh.common import NS, getNS
from twisted.conch.ssh.transport import (
    DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE,
    DISCONNECT_PROTOCOL_ERROR,
    DISCONNECT_SERVICE_NOT_AVAILABLE,
)
from twisted.cred.error import UnauthorizedLogin
from twisted.python.failure import Failure

from conch_container import messages
from conch_container.errors import AUTH_UNAVAILABLE_USER_MESSAGE
from conch_container.ssh.checkers import AuthenticationUnavailable
from conch_container.ssh.realm import ConnectionRejected

#: Methods the gateway can be configured for; anything else is not supported at all.
_CONFIGURABLE = {b"password": "password", b"publickey": "publicKey"}

#: Requests that may wait while an earlier one is being answered. Ordinary
#: clients wait for each answer (OpenSSH does); a handful covers those that
#: send a few requests ahead.
MAX_QUEUED_REQUESTS = 8

#: Bytes those waiting requests may hold together; a large public key request
#: with its signature is a few kilobytes.
MAX_QUEUED_BYTES = 64 * 1024

#: ``none`` requests and unsigned public key queries allowed per allowed
#: attempt. A client with many keys sends one query per key, each followed by
#: a signed attempt that does count, so only a client that never offers a
#: credential comes near this.
QUERIES_PER_ATTEMPT = 10


class UserAuthServer(userauth.SSHUserAuthServer):
    """Server side of ``ssh-userauth`` for the gateway."""

    transport: Any

    def serviceStarted(self) -> None:
        """Set up this connection's portal and limits, and send the banner."""
        transport = self.transport
        factory = transport.factory
        self.authenticatedWith = []
        self.loginAttempts = 0
        self.user = None
        self.nextService = None
        self.clock = transport.clock
        self.loginTimeout = factory.login_grace_time
        self.attemptsBeforeDisconnect = factory.max_auth_tries
        self.portal = factory.portal_for(transport)
        self.supportedAuthentications = [
            self.interfaceToMethod[i]
            for i in self.portal.listCredentialsInterfaces()
            if i in self.interfaceToMethod
        ]
        if not transport.isEncrypted("in"):
            # Never let a password cross an unencrypted transport.
            if b"password" in self.supportedAuthentications:
                self.supportedAuthentications.remove(b"password")
        # The transport's grace timer covers the whole login, key exchange
        # included; Conch's own timer (started here upstream) is not needed,
        # and so not started (see serviceStopped).
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._queries = 0
        self.max_queries = QUERIES_PER_ATTEMPT * factory.max_auth_tries
        self._busy = False
        self._processing = False
        self.log = transport.log
        if factory.banner:
            self.send_banner(factory.banner)

    def send_banner(self, text: str) -> None:
        """Send ``SSH_MSG_USERAUTH_BANNER``; OpenSSH prints it on the user's terminal."""
        self.transport.sendPacket(userauth.MSG_USERAUTH_BANNER, NS(text.encode("utf-8")) + NS(b""))

    def serviceStopped(self) -> None:
        """Nothing to stop: Conch's login timer, which its own method cancels, never started."""

    def timeoutAuthentication(self) -> None:
        """Conch's login timer: handled by the transport's grace timer."""
        self.transport.login_grace_expired()

    @property
    def pending_requests(self) -> int:
        """Requests waiting for an earlier one to be answered."""
        return len(self._queue)

    def ssh_USERAUTH_REQUEST(self, packet: bytes) -> None:
        """Queue the request; it is handled once the previous one has been answered."""
        if self._finished():
            return
        must_wait = self._busy or bool(self._queue)
        if must_wait and not self._room_for(packet):
            self._too_many_pending()
            return
        self._queue.append(packet)
        self._queued_bytes += len(packet)
        self._process()

    def _finished(self) -> bool:
        """Whether this service is done: disconnecting, or replaced by a login."""
        transport = self.transport
        return bool(transport.lost or transport.closing or transport.service is not self)

    def _room_for(self, packet: bytes) -> bool:
        return (
            len(self._queue) < MAX_QUEUED_REQUESTS
            and self._queued_bytes + len(packet) <= MAX_QUEUED_BYTES
        )

    def _drop_queue(self) -> None:
        self._queue.clear()
        self._queued_bytes = 0

    def _too_many_pending(self) -> None:
        self.log.event(
            messages.SSH_AUTH_TOO_MANY_PENDING,
            "Disconnecting: the client sent more than {pending} authentication requests "
            "ahead of the answers",
            pending=len(self._queue),
            queuedBytes=self._queued_bytes,
        )
        self._drop_queue()
        self.transport.disconnect(
            DISCONNECT_PROTOCOL_ERROR, "too many pending authentication requests"
        )

    def _process(self) -> None:
        if self._processing:
            return
        self._processing = True
        try:
            while self._queue and not self._busy:
                if self._finished():
                    self._drop_queue()
                    return
                packet = self._queue.popleft()
                self._queued_bytes -= len(packet)
                self._handle(packet)
        finally:
            self._processing = False

    def _handle(self, packet: bytes) -> None:
        try:
            user, next_service, method, rest = getNS(packet, 3)
        except Exception:
            self._drop_queue()
            self.transport.sendDisconnect(DISCONNECT_PROTOCOL_ERROR, b"malformed userauth request")
            return
        if next_service != b"ssh-connection":
            self._drop_queue()
            self.transport.sendDisconnect(
                DISCONNECT_SERVICE_NOT_AVAILABLE, b"only ssh-connection is available"
            )
            return
        if _is_query(method, rest):
            self._queries += 1
            if self._queries > self.max_queries:
                self._too_many_queries(user)
                return
        self._busy = True
        d = super().ssh_USERAUTH_REQUEST(packet)
        if d is None:
            self._busy = False
        else:
            d.addBoth(self._answered)

    def _too_many_queries(self, user: bytes) -> None:
        self.log.event(
            messages.SSH_AUTH_TOO_MANY_ATTEMPTS,
            "Disconnecting after {queries} authentication requests without a credential",
            queries=self.max_queries,
            attempts=self.loginAttempts,
            username=user.decode("utf-8", "replace"),
        )
        self._drop_queue()
        self.transport.disconnect(
            DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE, "too many authentication requests"
        )

    def _answered(self, result: object) -> None:
        if isinstance(result, Failure):
            self.log.failure(
                messages.UNKNOWN_ERROR,
                "Unexpected error while answering an authentication request: {reason}",
                result,
            )
        self._busy = False
        self._process()

    def tryAuth(self, kind: bytes, user: bytes, data: bytes) -> Any:
        """Log methods the client tries that are not configured, then let Conch dispatch."""
        if kind != b"none" and kind not in self.supportedAuthentications:
            log = self.log.bind(username=user.decode("utf-8", "replace"))
            method = kind.decode("ascii", "replace")
            if kind in _CONFIGURABLE:
                log.event(
                    messages.AUTH_DISABLED,
                    "Client tried {authtype} authentication, which is not enabled",
                    authtype=method,
                )
            else:
                log.event(
                    messages.AUTH_NOT_SUPPORTED,
                    "Client tried {authtype} authentication, which is not supported",
                    authtype=method,
                )
        return super().tryAuth(kind, user, data)

    def _ebBadAuth(self, reason: Any) -> None:
        """Answer a failed attempt: banner when unavailable, disconnect at the limit."""
        if reason.check(error.IgnoreAuthentication, ConnectionRejected):
            # A key query answered with PK_OK, or the realm already closed
            # the connection with a message for the user.
            return
        if self.transport.lost or self.transport.closing:
            return
        if not reason.check(error.ConchError, UnauthorizedLogin):
            self.log.failure(
                messages.UNKNOWN_ERROR,
                "Unexpected error while authenticating: {reason}",
                reason,
            )
        if reason.check(AuthenticationUnavailable):
            self.send_banner(AUTH_UNAVAILABLE_USER_MESSAGE + "\n")
        if self.method != b"none":
            self.loginAttempts += 1
            if self.loginAttempts >= self.attemptsBeforeDisconnect:
                self.log.event(
                    messages.SSH_AUTH_TOO_MANY_ATTEMPTS,
                    "Disconnecting after {attempts} failed authentication attempts",
                    attempts=self.loginAttempts,
                    username=(self.user or b"").decode("utf-8", "replace"),
                )
                self.transport.sendDisconnect(
                    DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE,
                    b"too many authentication failures",
                )
                return
        self.transport.sendPacket(
            userauth.MSG_USERAUTH_FAILURE,
            NS(b",".join(self.supportedAuthentications)) + b"\x00",
        )


def _is_query(method: bytes, rest: bytes) -> bool:
    """A request with no credential to check: ``none``, or a public key without signature."""
    return method == b"none" or (method == b"publickey" and rest[:1] == b"\x00")
