"""One SSH connection's container (Docker ``connection`` mode).

:meth:`DockerConnection.launch` pulls (per ``imagePullPolicy``), creates and
starts the container; the backend bounds it by ``timeouts.containerStart``.
Each step logs its code, and its ``_FAILED`` code with the engine's
explanation when it fails. Engine and pull errors that may be transient are
retried every ``retry_interval`` seconds until the deadline.

:meth:`DockerConnection.close` ends every session and force-removes the
container, retrying within ``timeouts.containerStop``. A container whose
create call returns after the connection gave up on it is removed as soon as
it is known, so no container outlives its connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet import task
from twisted.internet.defer import CancelledError, Deferred, DeferredList
from zope.interface import implementer

from conch_container import messages
from conch_container.backend.docker.agent import GuestAgent, select_agent
from conch_container.backend.docker.connectionmode.execsession import DockerExecSession
from conch_container.backend.docker.connectionmode.files import write_files
from conch_container.backend.docker.containerconfig import CreateRequest
from conch_container.backend.docker.engine.api import Engine
from conch_container.backend.docker.engine.errors import EngineError
from conch_container.backend.docker.pull import (
    MISSING_IMAGE_USER_MESSAGE,
    PullPolicy,
    canonical_image_name,
    classify_pull_error,
    is_missing_image_error,
)
from conch_container.backend.docker.sessionmode.ops import remove_container
from conch_container.backend.docker.sessionmode.session import (
    DockerContainerSession,
    SessionTemplate,
)
from conch_container.backend.forwarddial import ForwardDialSession, ForwardHelper
from conch_container.backend.forwardlisten import ForwardListener, ListenRequest
from conch_container.codes import Level, MessageCode
from conch_container.deferreds import DeadlineExceeded, Once, with_deadline
from conch_container.errors import GENERIC_USER_MESSAGE, ContainerSSHError
from conch_container.interfaces import IBackendConnection
from conch_container.log.logger import CodeLogger

if TYPE_CHECKING:
    from conch_container.config import DockerConfig

T = TypeVar("T")


class StepFailed(Exception):
    """A launch step failed for good (already logged under ``code``).

    :ivar user_message: what the SSH user may read about it.
    """

    def __init__(
        self, code: MessageCode, explanation: str, user_message: str = GENERIC_USER_MESSAGE
    ) -> None:
        super().__init__(explanation)
        self.code = code
        self.explanation = explanation
        self.user_message = user_message


def _never(error: EngineError) -> bool:
    return False


def _always(error: EngineError) -> bool:
    return True


def _create_user_message(error: EngineError) -> str:
    if is_missing_image_error(error.status, error.message):
        return MISSING_IMAGE_USER_MESSAGE
    return GENERIC_USER_MESSAGE


@implementer(IBackendConnection)
class DockerConnection:
    """The container of one SSH connection and the sessions running in it.

    :param reactor: the reactor (clock, connections to the engine).
    :param docker_config: the connection's ``docker`` config section.
    :param log: the connection's logger (``backend`` bound).
    :param retry_interval: seconds between attempts of a retried step.
    :param on_closed: called once the connection has been closed.
    """

    def __init__(
        self,
        *,
        reactor: Any,
        docker_config: DockerConfig,
        log: CodeLogger,
        retry_interval: float,
        on_closed: Callable[[DockerConnection], object] | None = None,
        removal_failed: Callable[[], object] = lambda: None,
    ) -> None:
        self._removal_failed = removal_failed
        self._reactor = reactor
        self._config = docker_config
        self._timeouts = docker_config.timeouts
        self._log = log
        self._retry_interval = retry_interval
        self._on_closed = on_closed
        self.engine: Engine | None = None
        self.container_id: str | None = None
        #: The container's guest agent (None if disabled), chosen before it starts.
        self.agent: GuestAgent | None = GuestAgent.configured(docker_config.execution)
        #: How this container dials forwarded connections, once the first found out.
        self._forward_helper: ForwardHelper | None = None
        self._create_result: Once[str] | None = None
        self._launch_d: Deferred[None] | None = None
        self._sessions: set[DockerExecSession | DockerContainerSession] = set()
        #: In session mode, what each session's container is made from (set by launch).
        self._template: SessionTemplate | None = None
        self._closing = False
        self._closed = False
        self._close_once: Once[None] | None = None
        #: The ``_FAILED`` code of the step in progress, for a deadline that expires in it.
        self.current_failure_code: MessageCode = messages.DOCKER_CONNECTION_FAILED
        #: Variables every program gets on top of the container's own (a pool
        #: container's user: its environment could not be part of the create).
        self._program_env: tuple[tuple[str, str], ...] = ()

    def hand_over(
        self,
        *,
        docker_config: DockerConfig,
        log: CodeLogger,
        env: Sequence[tuple[str, str]],
        on_closed: Callable[[DockerConnection], object],
    ) -> None:
        """Make a launched warm pool container a user's: from now on it runs
        with the user's ``docker`` settings, logs on the user's logger, gives
        ``env`` to every program, and reports its close to ``on_closed``."""
        self._config = docker_config
        self._timeouts = docker_config.timeouts
        self._log = log.bind(containerId=self.container_id)
        self._program_env = tuple(env)
        self._on_closed = on_closed
        self._log.event(
            messages.DOCKER_POOL_HANDOVER,
            "Took container {containerId} from the warm pool",
        )

    def still_running(self) -> Deferred[bool]:
        """Whether the container still runs (a warm pool's or a kept one may have
        waited for hours). Only a definite answer says no: the engine reports it
        stopped, or does not know it. An engine that does not answer in time is
        given the benefit of the doubt (removing a kept container on a hiccup
        would lose the user's work)."""
        return Deferred.fromCoroutine(self._still_running())

    async def _still_running(self) -> bool:
        if self._closing:
            return False
        if self._template is not None:
            return True  # session mode: no container of the connection's own
        engine, container_id = self.engine, self.container_id
        if engine is None or container_id is None:
            return False
        try:
            state = await with_deadline(
                self._reactor, self._timeouts.http, engine.container_state(container_id)
            )
        except EngineError as e:
            return e.status != 404
        except DeadlineExceeded:
            return True
        return bool(state.get("Running"))

    def write_files(self, files: Mapping[str, object]) -> Deferred[None]:
        """Write authentication's ``files`` into the running container (a pool container's
        user's, at hand-over)."""
        return Deferred.fromCoroutine(self._write_files(files))

    # -- launch

    def launch(
        self,
        engine_source: Callable[[], Awaitable[Engine]],
        request: CreateRequest,
        policy: PullPolicy,
        registry_auth: dict[str, str],
        files: Mapping[str, object],
        *,
        timeout: float,
    ) -> Deferred[None]:
        """Pull if needed, create and start the container, within ``timeout`` seconds.

        :meth:`close` cancels a launch still in progress.
        :raises StepFailed: (through the Deferred) when a step fails for good.
        :raises DeadlineExceeded: when the time is up.
        """
        d = Deferred.fromCoroutine(
            with_deadline(
                self._reactor,
                timeout,
                self._launch(engine_source, request, policy, registry_auth, files),
            )
        )
        if not d.called:
            self._launch_d = d
        return d

    async def _launch(
        self,
        engine_source: Callable[[], Awaitable[Engine]],
        request: CreateRequest,
        policy: PullPolicy,
        registry_auth: dict[str, str],
        files: Mapping[str, object],
    ) -> None:
        self.engine = await self._step(
            messages.DOCKER_CONNECTION_FAILED,
            "Cannot reach the Docker engine: {reason}",
            engine_source,
            permanent=_never,
        )
        await self._pull_if_needed(request, policy, registry_auth)
        if self._config.execution.mode == "session":
            # Each session channel gets its own container (sessionmode/).
            self._template = SessionTemplate(request, files)
            return
        await self._create(request)
        await self._select_agent()
        await self._start()
        await self._write_files(files)

    async def _pull_if_needed(
        self, request: CreateRequest, policy: PullPolicy, registry_auth: dict[str, str]
    ) -> None:
        engine = self.engine
        assert engine is not None
        image = request.image
        self._log.event(
            messages.DOCKER_IMAGE_PULL_NEEDED_CHECKING,
            "Checking whether image {image} needs a pull (policy {policy})",
            image=image,
            policy=policy.value,
        )
        present: bool | None = None
        if policy.needs_inspect:
            self._log.event(messages.DOCKER_IMAGE_LISTING, "Looking for image {image}", image=image)
            present = await self._step(
                messages.DOCKER_IMAGE_LISTING_FAILED,
                "Cannot look up image {image}: {reason}",
                lambda: engine.image_present(image),
                permanent=_never,
                image=image,
            )
        if not policy.should_pull(present):
            return
        name = canonical_image_name(image)
        self._log.event(messages.DOCKER_IMAGE_PULL, "Pulling image {image}", image=name)
        await self._step(
            messages.DOCKER_IMAGE_PULL_FAILED,
            "Failed to pull image {image}: {reason}",
            lambda: engine.pull(image, registry_auth, request.platform),
            permanent=lambda e: classify_pull_error(e.status, e.message).permanent,
            user_message=lambda e: classify_pull_error(e.status, e.message).user_message,
            image=name,
        )

    async def _create(self, request: CreateRequest) -> None:
        engine = self.engine
        assert engine is not None
        self._log.event(
            messages.DOCKER_CONTAINER_CREATE, "Creating container from {image}", image=request.image
        )
        # The create call cannot be cancelled: its result is recorded whenever it
        # arrives, so that close() (or a late arrival) removes the container.
        result: Once[str] = Once()
        self._create_result = result
        d = engine.create_container(request)
        d.addCallback(self._record_container)
        d.addBoth(result.fire)
        await self._step(
            messages.DOCKER_CONTAINER_CREATE_FAILED,
            "Failed to create container: {reason}",
            result.wait,
            permanent=_always,
            user_message=_create_user_message,
        )

    def _record_container(self, container_id: str) -> str:
        self.container_id = container_id
        self._log = self._log.bind(containerId=container_id)
        if self._closed:
            # The connection was closed before the create call returned.
            Deferred.fromCoroutine(
                self._remove(self._reactor.seconds() + self._timeouts.container_stop)
            )
        return container_id

    async def _start(self) -> None:
        engine, container_id = self.engine, self.container_id
        assert engine is not None and container_id is not None
        self._log.event(messages.DOCKER_CONTAINER_START, "Starting container {containerId}")
        await self._step(
            messages.DOCKER_CONTAINER_START_FAILED,
            "Failed to start container: {reason}",
            lambda: engine.start_container(container_id),
            permanent=_always,
        )

    async def _select_agent(self) -> None:
        """Choose the guest agent (copying the project's into the container if needed)."""
        engine, container_id = self.engine, self.container_id
        assert engine is not None and container_id is not None
        if self.agent is None:
            return  # disabled (DOCKER_GUEST_AGENT_DISABLED was logged)
        self.current_failure_code = messages.DOCKER_CONTAINER_START_FAILED
        self.agent = await select_agent(
            self._reactor,
            engine,
            container_id,
            self._config.execution.agent_path,
            timeout=self._timeouts.command_start,
            log=self._log,
        )

    async def _write_files(self, files: Mapping[str, object]) -> None:
        """Write authentication's ``files`` through the guest agent, before any program runs."""
        engine, container_id = self.engine, self.container_id
        assert engine is not None and container_id is not None
        if not files:
            return
        self.current_failure_code = messages.DOCKER_FILE_WRITE_FAILED
        await write_files(
            self._reactor,
            engine,
            container_id,
            self.agent,
            files,
            timeout=self._timeouts.command_start,
            log=self._log,
        )

    async def _step(
        self,
        failed_code: MessageCode,
        failed_format: str,
        action: Callable[[], Awaitable[T]],
        *,
        permanent: Callable[[EngineError], bool],
        user_message: Callable[[EngineError], str] | None = None,
        **fields: Any,
    ) -> T:
        """Run ``action``, retrying transient engine errors until cancelled.

        ``user_message`` words a permanent failure for the SSH user (default:
        the generic message).
        """
        self.current_failure_code = failed_code
        if self._closing:
            self._log.event(
                failed_code, failed_format, reason="the connection was closed", **fields
            )
            raise StepFailed(failed_code, "the connection was closed while the container started")
        last = "timed out"
        while True:
            try:
                return await action()
            except CancelledError:
                reason = "the connection was closed" if self._closing else last
                self._log.event(failed_code, failed_format, reason=reason, **fields)
                raise
            except EngineError as e:
                if permanent(e):
                    self._log.event(failed_code, failed_format, reason=e.message, **fields)
                    raise StepFailed(
                        failed_code,
                        e.message,
                        GENERIC_USER_MESSAGE if user_message is None else user_message(e),
                    ) from None
                last = f"{e.message} (timed out while retrying)"
                self._log.event(
                    failed_code,
                    failed_format + "; retrying in {retryIn} s",
                    reason=e.message,
                    retryIn=self._retry_interval,
                    level=Level.DEBUG,
                    **fields,
                )
            try:
                await task.deferLater(self._reactor, self._retry_interval)
            except CancelledError:
                reason = "the connection was closed" if self._closing else last
                self._log.event(failed_code, failed_format, reason=reason, **fields)
                raise

    # -- sessions

    def open_forward(
        self, channel_id: object, host: str, port: int, *, unix: bool = False
    ) -> ForwardDialSession:
        """A session for a forwarded connection's dialler: execs in the connection's container.

        :raises ContainerSSHError: (``SSH_FORWARD_FAILED``) in session mode,
            where no container lives as long as the connection.
        """
        self._refuse_forwarding_in_session_mode()
        return self._forwarding().dial(lambda: self.open_session(channel_id), host, port, unix=unix)

    def open_listener(self, request: ListenRequest, on_connection: Any) -> ForwardListener:
        """A port, socket or X11 display the container listens on for the client,
        served by the forwarding helper."""
        self._refuse_forwarding_in_session_mode()
        label = f"listen {request.kind.name.lower()} {request.bind_host}:{request.bind_port}"
        return self._forwarding().listen(lambda: self.open_session(label), request, on_connection)

    def _refuse_forwarding_in_session_mode(self) -> None:
        if self._template is not None:
            raise ContainerSSHError(
                messages.SSH_FORWARD_FAILED,
                "Port forwarding needs the connection execution mode.",
                "in session mode no container lives as long as the connection to forward from",
            )

    def _forwarding(self) -> ForwardHelper:
        if self._forward_helper is None:
            agent = self.agent
            path = agent.installed_path if agent is not None else None
            self._forward_helper = ForwardHelper(self._reactor, path, self._log)
        return self._forward_helper

    def open_session(
        self, channel_id: object, *, log: CodeLogger | None = None
    ) -> DockerExecSession | DockerContainerSession:
        """A new session for a session channel: an exec, or in session mode a container.

        :param log: the logger of the SSH connection the session belongs to, when
            that is not the one this container was made for (a container shared
            by key); the container's id is added to it.
        """
        session_log = self._log if log is None else log.bind(containerId=self.container_id)
        if self._template is not None and self.engine is not None and not self._closing:
            container_session = DockerContainerSession(
                reactor=self._reactor,
                engine=self.engine,
                template=self._template,
                docker_config=self._config,
                log=session_log,
                channel_id=channel_id,
                retry_interval=self._retry_interval,
                on_closed=self._sessions.discard,
                removal_failed=self._removal_failed,
            )
            self._sessions.add(container_session)
            return container_session
        if self._closing or self.engine is None or self.container_id is None:
            error = ContainerSSHError(
                messages.DOCKER_CONTAINER_SHUTTING_DOWN,
                GENERIC_USER_MESSAGE,
                "the connection's container is being removed",
                channelId=channel_id,
            )
            error.log(self._log)
            raise error
        session = DockerExecSession(
            reactor=self._reactor,
            engine=self.engine,
            container_id=self.container_id,
            docker_config=self._config,
            log=session_log,
            channel_id=channel_id,
            on_closed=self._sessions.discard,
            agent=self.agent,
            env=self._program_env,
        )
        self._sessions.add(session)
        return session

    # -- close

    def close(self) -> Deferred[None]:
        """End every session and remove the container; idempotent, never fails."""
        if self._close_once is None:
            once: Once[None] = Once()
            self._close_once = once
            Deferred.fromCoroutine(self._close()).addBoth(once.fire)
        return self._close_once.wait()

    async def _close(self) -> None:
        self._closing = True
        if self._launch_d is not None and not self._launch_d.called:
            self._launch_d.cancel()
        deadline = self._reactor.seconds() + self._timeouts.container_stop
        try:
            sessions = list(self._sessions)
            self._sessions.clear()
            if sessions:
                await DeferredList([s.shutdown(kill=False) for s in sessions], consumeErrors=True)
            result = self._create_result
            if result is not None and not result.done:
                try:
                    await with_deadline(
                        self._reactor, deadline - self._reactor.seconds(), result.wait()
                    )
                except Exception:
                    pass  # a late result is removed when it arrives (_record_container)
            if self.container_id is not None:
                await self._remove(deadline)
        except Exception as e:
            self._log.event(
                messages.DOCKER_CONTAINER_REMOVE_FAILED,
                "Unexpected failure while closing the connection: {reason}",
                reason=str(e),
            )
        finally:
            self._closed = True
            if self._on_closed is not None:
                self._on_closed(self)

    async def _remove(self, deadline: float) -> bool:
        """Force-remove the container, retrying until ``deadline``; never raises."""
        engine, container_id = self.engine, self.container_id
        assert engine is not None and container_id is not None
        removed = await remove_container(
            self._reactor,
            engine,
            container_id,
            deadline=deadline,
            retry_interval=self._retry_interval,
            log=self._log,
        )
        if removed and self.container_id == container_id:
            self.container_id = None
        if not removed:
            self._removal_failed()
        return removed


def launch_error(error: BaseException, connection: DockerConnection) -> ContainerSSHError:
    """The user-safe error for a failed :meth:`DockerConnection.launch`."""
    if isinstance(error, ContainerSSHError):
        return error
    if isinstance(error, StepFailed):
        return ContainerSSHError(error.code, error.user_message, error.explanation)
    if isinstance(error, CancelledError):
        return ContainerSSHError(
            connection.current_failure_code,
            GENERIC_USER_MESSAGE,
            "the connection was closed while its container was starting",
        )
    if isinstance(error, DeadlineExceeded):
        return ContainerSSHError(
            connection.current_failure_code,
            GENERIC_USER_MESSAGE,
            f"the container did not start within containerStart ({error.seconds:g} s)",
        )
    return ContainerSSHError(
        connection.current_failure_code, GENERIC_USER_MESSAGE, f"unexpected error: {error!r}"
    )
