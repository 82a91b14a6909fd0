"""The extension points: zope interfaces operators (and we) implement.

Methods documented as returning "an awaitable" may return a coroutine or a
:class:`~twisted.internet.defer.Deferred`; callers normalise with
:func:`conch_container.deferreds.as_deferred`, so implementations never need
to care which one they hand back.

The data flow matches ContainerSSH's handler chain: the SSH layer authenticates
with :class:`IPasswordAuthenticator` / :class:`IPublicKeyAuthenticator`
(then :class:`IAuthorizer`), then asks the configured :class:`IContainerBackend`
for an :class:`IBackendConnection`, and opens one :class:`IBackendSession` per
session channel. Filters (security policy, audit, metrics) wrap these
interfaces, so a backend never knows they exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import attrs
from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from conch_container.config import AppConfig
    from conch_container.log.logger import CodeLogger
    from conch_container.metadata import ConnectionMetadata

# ---------------------------------------------------------------------------
# Authentication


class IPasswordAuthenticator(Interface):
    """Checks a password (``auth.password.method``)."""

    name = Attribute("Short name for logs and metrics, e.g. ``webhook`` or ``static``.")

    def authenticate_password(metadata, password):  # type: ignore[no-untyped-def]
        """Decide on a password.

        :param metadata: the :class:`~conch_container.metadata.ConnectionMetadata`
            of the connection (``username`` is the login name).
        :param bytes password: the password as the client sent it.
        :return: an awaitable :class:`~conch_container.metadata.AuthResult`.
        :raises ~conch_container.errors.ContainerSSHError: (code ``AUTH_BACKEND_ERROR``)
            when no decision can be had; the user is told authentication is unavailable.
        """


class IPublicKeyAuthenticator(Interface):
    """Decides whether a public key may log in (``auth.publicKey.method``).

    Called only after the client proved possession of the private key: the
    SSH layer verifies the signature first.
    """

    name = Attribute("Short name for logs and metrics.")

    def authenticate_public_key(metadata, public_key):  # type: ignore[no-untyped-def]
        """Decide on a public key.

        :param str public_key: the key in authorized_keys form without comment
            (``ssh-ed25519 AAAA...``).
        :return: an awaitable :class:`~conch_container.metadata.AuthResult`.
        :raises ~conch_container.errors.ContainerSSHError: when no decision can be had.
        """


class IAuthorizer(Interface):
    """Confirms a successful authentication (``auth.authz``)."""

    name = Attribute("Short name for logs and metrics.")

    def authorize(metadata):  # type: ignore[no-untyped-def]
        """Confirm or refuse an authenticated user.

        :param metadata: metadata including ``authenticated_username`` and what
            authentication added.
        :return: an awaitable :class:`~conch_container.metadata.AuthResult`;
            ``success=False`` refuses the login.
        """


# ---------------------------------------------------------------------------
# Backends


@attrs.frozen
class PtyRequest:
    """A ``pty-req``: terminal type, size in characters and pixels, encoded modes."""

    term: str
    columns: int
    rows: int
    width: int = 0
    height: int = 0
    modes: bytes = b""


@attrs.frozen
class ProgramRequest:
    """What the client asked to run on a session channel.

    :ivar kind: ``shell``, ``exec`` or ``subsystem``.
    :ivar command: the exec string, or the subsystem name; empty for a shell.
    """

    kind: Literal["shell", "exec", "subsystem"]
    command: str = ""


@attrs.frozen
class ExitStatus:
    """How a program ended: an exit code, or a signal name (without ``SIG``)."""

    code: int | None = None
    signal: str | None = None
    core_dumped: bool = False
    message: str = ""

    def __attrs_post_init__(self) -> None:
        if (self.code is None) == (self.signal is None):
            raise ValueError("an exit status has exactly one of code and signal")


@attrs.frozen
class ConnectionContext:
    """What a backend gets for a new connection.

    :ivar metadata: the authenticated :class:`~conch_container.metadata.ConnectionMetadata`.
    :ivar config: the connection's effective :class:`~conch_container.config.AppConfig`
        (it may differ per connection once the config webhook is in use, so a
        backend reads its settings from here, never from start-up state).
    :ivar log: a :class:`~conch_container.log.CodeLogger` bound to the connection.
    """

    metadata: ConnectionMetadata
    config: AppConfig
    log: CodeLogger


class ISessionIO(Interface):
    """The SSH channel side of a session, as a backend sees it.

    The SSH layer provides it; filters may wrap it (the audit log taps it).
    """

    def stdout(data):  # type: ignore[no-untyped-def]
        """Program output for the client's stdout."""

    def stderr(data):  # type: ignore[no-untyped-def]
        """Program output for the client's stderr (merged into stdout with a TTY)."""

    def output_closed():  # type: ignore[no-untyped-def]
        """The program closed its output: the client gets EOF."""

    def exited(status):  # type: ignore[no-untyped-def]
        """The program ended with an :class:`ExitStatus`; the channel closes after this."""

    def register_producer(producer):  # type: ignore[no-untyped-def]
        """Register the backend's output stream as an ``IPushProducer``.

        The SSH layer pauses it while the client's window is full or the
        client's socket does not drain, and resumes it when there is room
        again, so output is never buffered unbounded.
        """

    def unregister_producer():  # type: ignore[no-untyped-def]
        """Forget the producer registered before."""


class IBackendSession(Interface):
    """One session channel's program.

    Requests arrive in SSH order: any number of :meth:`set_env` and at most one
    :meth:`set_pty`, then one :meth:`start`; then :meth:`write`,
    :meth:`close_stdin`, :meth:`resize` and :meth:`signal` while it runs; and
    :meth:`close` exactly once when the channel goes away. A method that
    refuses raises :class:`~conch_container.errors.ContainerSSHError`; the
    SSH layer then answers the request with failure.
    """

    def set_env(name, value):  # type: ignore[no-untyped-def]
        """Add an environment variable for the program (before start)."""

    def set_pty(pty):  # type: ignore[no-untyped-def]
        """Ask for a terminal (:class:`PtyRequest`) for the program (before start)."""

    def start(program, io):  # type: ignore[no-untyped-def]
        """Start the program and stream its I/O to ``io`` (:class:`ISessionIO`).

        :param ProgramRequest program: what to run.
        :return: an awaitable that fires once the program runs, or fails with a
            :class:`~conch_container.errors.ContainerSSHError` whose
            ``user_message`` the client may see.
        """

    def write(data):  # type: ignore[no-untyped-def]
        """Client stdin for the program; only called after :meth:`start` succeeded."""

    def close_stdin():  # type: ignore[no-untyped-def]
        """The client sent EOF: close the program's stdin, keep its output flowing."""

    def register_input_producer(producer):  # type: ignore[no-untyped-def]
        """Take the client's stdin as an ``IPushProducer``; called once, after :meth:`start`.

        The backend pauses it (``pauseProducing``) while it holds more stdin
        than it wants to, resumes it when the program has taken enough, and
        stops it (``stopProducing``) when it will take no more. While it is
        paused the client gets no more SSH window, so a program that reads
        slowly holds the client back instead of filling the gateway's
        memory. A backend that passes stdin on at once (it buffers nothing)
        may keep the producer without ever pausing it.

        Optional: a session without this method gets stdin as fast as the
        client sends it, and whatever it buffers is its own to bound.
        """

    def resize(columns, rows, width, height):  # type: ignore[no-untyped-def]
        """The client's window changed; return an awaitable."""

    def signal(name):  # type: ignore[no-untyped-def]
        """Deliver a signal (name without ``SIG``); return an awaitable."""

    def close():  # type: ignore[no-untyped-def]
        """The channel is gone: stop the program if it still runs, release everything.

        Idempotent; returns an awaitable that fires when cleanup is done.
        """


class IBackendConnection(Interface):
    """A backend's resources for one SSH connection (in Docker connection mode, its container)."""

    def open_session(channel_id):  # type: ignore[no-untyped-def]
        """A new :class:`IBackendSession` for a session channel (synchronous)."""

    def close():  # type: ignore[no-untyped-def]
        """The connection is gone: end every session, remove every container.

        Idempotent. Returns an awaitable that fires when nothing of the
        connection is left in the backend; it must finish even when the
        engine misbehaves (bounded by the backend's stop timeout).
        """


class IContainerBackend(Interface):
    """A place where users' programs run: Docker, Kubernetes, ..."""

    name = Attribute("The ``backend`` config value this implements, e.g. ``docker``.")

    def connect(context):  # type: ignore[no-untyped-def]
        """Prepare for an authenticated connection (:class:`ConnectionContext`).

        :return: an awaitable :class:`IBackendConnection`.
        :raises ~conch_container.errors.ContainerSSHError: with a user-safe
            message; the connection is then closed
            (``SSH_BACKEND_REJECTED_HANDSHAKE``).
        """


class IBackendMetrics(Interface):
    """A backend that reports what only it sees (containers it failed to remove) to the metrics.

    Optional: the gateway counts a backend's requests, errors and set-up
    time itself, around :meth:`IContainerBackend.connect`.
    """

    def record_with(recorder):  # type: ignore[no-untyped-def]
        """Report to ``recorder``, a
        :class:`~conch_container.metrics.recorders.BackendRecorder`, from now on."""


class IBackendLifecycle(Interface):
    """What a backend does for the gateway as a whole, beside single connections.

    Optional: the gateway drives a backend that provides it (usually the
    same object as its :class:`IContainerBackend`) and leaves one that does
    not alone. Each method may return an awaitable.
    """

    def start():  # type: ignore[no-untyped-def]
        """Get ready, once, before the gateway accepts connections.

        The place to clean up after a run of the same instance that was
        killed: its resources carry the same instance id. A failure stops
        the gateway's start-up.
        """

    def stop():  # type: ignore[no-untyped-def]
        """Release everything, once, after every connection has closed.

        Called after :meth:`start`: at shutdown when it succeeded, and right
        away when a backend started for a connection (chosen by a
        configuration server) failed or overran its start, to release what
        half-started; it must then not hang either.
        """

    def remove_all():  # type: ignore[no-untyped-def]
        """Remove everything this gateway instance created, whoever it belonged to.

        The last resort at shutdown, when connections did not close within
        the shutdown deadline; must not fail.

        :return: (an awaitable of) the number of things removed.
        """


class IBackendFactory(Interface):
    """Makes the backend named by the ``backend`` configuration value.

    Built-in and third-party backends are found the same way: as Twisted
    plugins providing this interface in the ``conch_container.plugins``
    package (any ``conch_container/plugins/`` directory on ``sys.path``).
    """

    name = Attribute("The ``backend`` config value it serves, e.g. ``docker``.")

    def check_config(config):  # type: ignore[no-untyped-def]
        """Check what only this backend knows about a loaded, valid configuration.

        Called by ``conch-container check-config`` and at start-up, before
        the gateway daemonises, so that a setting the backend cannot use is
        refused then rather than at the first login. Every value of the
        configuration's own sections, the Docker and Kubernetes API
        structures included, has been checked by the schema already; a
        backend with nothing to add returns an empty sequence.

        :param config: the :class:`~conch_container.config.AppConfig`.
        :return: a sequence of
            :class:`~conch_container.config.ConfigWarning` (empty if none).
        :raises ~conch_container.config.ConfigError: naming the key path.
        """

    def build(reactor, log, instance_id, config):  # type: ignore[no-untyped-def]
        """A new :class:`IContainerBackend`.

        :param reactor: the reactor (clock, threads, network) it must use.
        :param log: a :class:`~conch_container.log.CodeLogger`.
        :param str instance_id: this running gateway's identity, unique among
            live gateways and taken over by a restart after a crash; label what
            you create with it so that leftovers can be found after a crash.
        :param config: the gateway's static :class:`~conch_container.config.AppConfig`,
            for start-up work (a connection's own settings arrive with
            :meth:`IContainerBackend.connect`).

        If the backend also provides :class:`IBackendLifecycle`, the gateway
        starts it before accepting connections and stops it after the last
        one closed.
        """


# ---------------------------------------------------------------------------
# Audit log


@attrs.frozen
class AuditStreamInfo:
    """What a storage knows about one connection's audit stream.

    :ivar connection_id: the connection's id, which names the stream (the
        file name, the S3 object key).
    :ivar start_time: when the client connected, in Unix seconds.
    :ivar remote_addr: the client's IP address (without the port).
    :ivar country: the client's country code (``XX`` when unknown).
    :ivar authenticated: whether the client has authenticated.
    :ivar username: the authenticated username, once known.
    """

    connection_id: str
    start_time: int
    remote_addr: str
    country: str = "XX"
    authenticated: bool = False
    username: str | None = None


class IAuditEncoder(Interface):
    """One connection's audit stream in one format.

    Pure: it turns messages into bytes and does no I/O. The recorder calls
    it from one thread at a time (a thread of the audit pool), so it need not
    lock. The first bytes it returns carry the format's header, if any.
    """

    def encode(message):  # type: ignore[no-untyped-def]
        """Take ``message`` (an :class:`~conch_container.audit.message.AuditMessage`).

        :return: bytes to append to the stream (possibly empty: a format may
            hold data back, as a compressor does, until :meth:`flush`).
        """

    def flush():  # type: ignore[no-untyped-def]
        """Bytes that make every message encoded so far readable from the stream.

        The recorder appends them before it considers the messages written,
        so that a gateway killed at any moment leaves a stream that decodes
        up to the last flush.
        """

    def finish():  # type: ignore[no-untyped-def]
        """The last bytes of the stream (a trailer); nothing is encoded after."""


class IAuditCodec(Interface):
    """An audit log format (``audit.format``)."""

    name = Attribute("The ``audit.format`` value it serves, e.g. ``binary``.")

    def encoder(connection_id, start_time_ns):  # type: ignore[no-untyped-def]
        """A new :class:`IAuditEncoder` for one connection.

        :param str connection_id: the connection's id.
        :param int start_time_ns: when the client connected, in Unix nanoseconds.
        """


class IAuditSink(Interface):
    """One connection's audit stream in a storage.

    Its methods block (they write files); the recorder calls them on its own
    bounded thread pool, never two at once for one sink, never from the
    reactor thread.
    """

    def write(data):  # type: ignore[no-untyped-def]
        """Append ``data`` (bytes).

        Once this returns, the data is in the operating system's hands: a
        gateway killed right after loses none of it.
        """

    def update(info):  # type: ignore[no-untyped-def]
        """The stream's :class:`AuditStreamInfo` changed (the user authenticated)."""

    def close():  # type: ignore[no-untyped-def]
        """The stream is complete; no call follows.

        A storage that ships streams elsewhere (S3) takes it from here, in the
        background; the recorder does not wait for the upload.
        """


class IAuditStorage(Interface):
    """Where audit streams go (``audit.storage``).

    A storage that also provides :class:`twisted.application.service.IService`
    is put in the gateway's service tree: started before the gateway accepts
    connections (to recover what a killed run left behind), stopped after the
    last connection closed (to finish its uploads within the shutdown deadline).
    """

    name = Attribute("The ``audit.storage`` value it serves, e.g. ``file``.")

    def open(info):  # type: ignore[no-untyped-def]
        """A new :class:`IAuditSink` for the stream described by ``info``.

        Blocks (it creates a file): called on the recorder's thread pool.

        :param info: the :class:`AuditStreamInfo` at the time of connection.
        """
