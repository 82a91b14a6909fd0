"""Every ``DOCKER_*`` message code is produced by a test that asserts it.

:data:`PRODUCERS` maps each ``DOCKER_*`` code of :mod:`conch_container.messages`
to the tests (``module.Class.method``) that drive the Docker backend into that
situation and assert the code; :data:`NOT_PRODUCED` lists, with the reason,
the few codes this version of the backend has no situation for. The checks
are :mod:`tests.codes_coverage`'s.

When a new ``DOCKER_*`` code is added, add its producing test here.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.codes_coverage import CodesCoverageMixin

_INTEGRATION = "tests.backend.test_docker_integration.DockerBackendIntegrationTests"
_CODES = "tests.backend.test_docker_codes.DockerCodesTests"
_EXECOPS = "tests.backend.test_docker_execops"
_SESSION_MODE = "tests.backend.test_docker_sessionmode.SessionModeIntegrationTests"
_SESSION_FAKE = "tests.backend.test_docker_sessionmode_fake.ContainerSessionTests"
_SESSION_OPS = "tests.backend.test_docker_sessionmode_ops"
_AGENT = "tests.backend.test_docker_agent"
_AGENT_REAL = "tests.backend.test_docker_agent_integration"
_REGISTRY = "tests.backend.test_docker_registry.RegistryPullTests"
_RECONCILE = "tests.backend.test_docker_reconcile.RemoveLeftoversTests"
_POOL = "tests.backend.test_docker_warmpool.WarmPoolTests"

#: Each ``DOCKER_*`` code -> the tests that produce it and assert it.
PRODUCERS: dict[str, tuple[str, ...]] = {
    # -- configuration and the engine
    "DOCKER_CONFIG_ERROR": (f"{_INTEGRATION}.test_config_error",),
    "DOCKER_CONNECTION_FAILED": (
        f"{_CODES}.test_engine_unreachable",
        f"{_CODES}.test_reconcile_engine_down",
        f"{_RECONCILE}.test_engine_down",
    ),
    # -- image
    "DOCKER_IMAGE_PULL_NEEDED_CHECKING": (f"{_CODES}.test_lifecycle",),
    "DOCKER_IMAGE_LISTING": (f"{_INTEGRATION}.test_if_not_present_present_image",),
    "DOCKER_IMAGE_LISTING_FAILED": (f"{_CODES}.test_image_listing_failed",),
    "DOCKER_IMAGE_PULL": (f"{_REGISTRY}.test_always_pulls_present_image",),
    "DOCKER_IMAGE_PULL_FAILED": (f"{_INTEGRATION}.test_pull_failure_retried_until_deadline",),
    # -- the connection's container
    "DOCKER_CONTAINER_CREATE": (f"{_CODES}.test_lifecycle",),
    "DOCKER_CONTAINER_CREATE_FAILED": (f"{_INTEGRATION}.test_bad_mount",),
    "DOCKER_CONTAINER_START": (f"{_CODES}.test_lifecycle",),
    "DOCKER_CONTAINER_START_FAILED": (f"{_INTEGRATION}.test_start_failure_removes_container",),
    "DOCKER_CONTAINER_REMOVE": (f"{_CODES}.test_lifecycle",),
    "DOCKER_CONTAINER_REMOVE_SUCCESSFUL": (
        f"{_CODES}.test_lifecycle",
        f"{_INTEGRATION}.test_close_removes_container",
    ),
    "DOCKER_CONTAINER_REMOVE_FAILED": (
        f"{_CODES}.test_remove_failed",
        f"{_RECONCILE}.test_refused_and_unanswered",
    ),
    "DOCKER_CONTAINER_SHUTTING_DOWN": (
        f"{_CODES}.test_closed_connection_refuses_sessions",
        f"{_SESSION_MODE}.test_channel_close_stops_and_removes",
    ),
    "DOCKER_CONTAINER_RECONCILE": (
        f"{_CODES}.test_reconcile_at_start",
        "tests.integration.test_no_leftovers.GatewayProcessTests.test_sigkill_then_restart",
    ),
    # -- the guest agent and files
    "DOCKER_GUEST_AGENT_DISABLED": (f"{_CODES}.test_guest_agent_disabled",),
    "DOCKER_GUEST_AGENT_SELECTED": (f"{_AGENT_REAL}.InstalledAgentTests.test_agent_selected",),
    "DOCKER_GUEST_AGENT_INSTALL_FAILED": (
        f"{_AGENT_REAL}.FallbackAgentTests.test_inline_agent_selected",
    ),
    "DOCKER_EXEC_PID_READ_FAILED": (f"{_AGENT_REAL}.FallbackAgentTests.test_broken_agent",),
    "DOCKER_FILE_WRITE": (f"{_AGENT}.WriteFilesWithoutAgentTests.test_engine_refuses_exec",),
    "DOCKER_FILE_WRITE_FAILED": (
        f"{_AGENT_REAL}.InstalledAgentTests.test_files_before_first_program",
    ),
    # -- programs (connection mode: execs)
    "DOCKER_EXEC": (f"{_INTEGRATION}.test_echo",),
    "DOCKER_EXEC_CREATE": (f"{_INTEGRATION}.test_echo",),
    "DOCKER_EXEC_CREATE_FAILED": (f"{_CODES}.test_exec_create_failed",),
    "DOCKER_EXEC_ATTACH": (f"{_INTEGRATION}.test_echo",),
    "DOCKER_EXEC_ATTACH_FAILED": (f"{_CODES}.test_exec_attach_failed",),
    "DOCKER_EXEC_RESIZE": (f"{_INTEGRATION}.test_tty_and_resize",),
    "DOCKER_EXEC_RESIZE_FAILED": (f"{_CODES}.test_resize_failed",),
    "DOCKER_STREAM_INPUT_FAILED": (f"{_CODES}.test_stream_input_failed",),
    "DOCKER_STREAM_OUTPUT_FAILED": (f"{_CODES}.test_stream_cut_mid_frame",),
    "DOCKER_CLOSE_INPUT_FAILED": (f"{_CODES}.test_close_input_failed",),
    "DOCKER_SUBSYSTEM_NOT_SUPPORTED": (f"{_INTEGRATION}.test_unknown_subsystem",),
    "DOCKER_PROGRAM_ALREADY_RUNNING": (f"{_INTEGRATION}.test_second_start",),
    "DOCKER_PROGRAM_NOT_RUNNING": (f"{_INTEGRATION}.test_not_running",),
    # -- signals
    "DOCKER_EXEC_SIGNAL": (f"{_EXECOPS}.SignalTests.test_delivered",),
    "DOCKER_EXEC_SIGNAL_SUCCESSFUL": (
        f"{_AGENT_REAL}.InstalledAgentTests.test_conformance_signal",
        f"{_EXECOPS}.SignalTests.test_delivered",
    ),
    "DOCKER_EXEC_SIGNAL_FAILED": (f"{_EXECOPS}.SignalTests.test_agent_refuses",),
    "DOCKER_EXEC_SIGNAL_FAILED_NO_AGENT": (f"{_INTEGRATION}.test_signal_without_agent",),
    "DOCKER_SIGNAL_FAILED_NO_PID": (f"{_AGENT_REAL}.FallbackAgentTests.test_signal_without_pid",),
    # -- exit codes
    "DOCKER_EXIT_CODE": (f"{_INTEGRATION}.test_echo",),
    "DOCKER_EXIT_CODE_FAILED": (f"{_EXECOPS}.ExitCodeTests.test_failures",),
    "DOCKER_EXIT_CODE_NEGATIVE": (f"{_EXECOPS}.ExitCodeTests.test_failures",),
    "DOCKER_EXIT_CODE_STILL_RUNNING": (f"{_EXECOPS}.ExitCodeTests.test_still_running",),
    "DOCKER_EXIT_CODE_CONTAINER_RESTARTING": (
        f"{_SESSION_OPS}.FetchExitCodeTests.test_restarting",
    ),
    # -- session mode: a container per session channel
    "DOCKER_CONTAINER_ATTACH": (f"{_SESSION_MODE}.test_echo",),
    "DOCKER_CONTAINER_ATTACH_FAILED": (f"{_SESSION_FAKE}.test_attach_fails",),
    "DOCKER_CONTAINER_SIGNAL": (f"{_SESSION_MODE}.test_signal_term",),
    "DOCKER_CONTAINER_SIGNAL_FAILED": (f"{_SESSION_MODE}.test_signal_unsupported",),
    "DOCKER_CONTAINER_STOP": (f"{_SESSION_MODE}.test_channel_close_stops_and_removes",),
    "DOCKER_CONTAINER_STOP_FAILED": (f"{_SESSION_FAKE}.test_stop_fails",),
    # -- the warm pool
    "DOCKER_POOL_STARTED": (f"{_POOL}.test_filled_at_start",),
    "DOCKER_POOL_FILL": (f"{_POOL}.test_hand_over_applies_the_user_and_refills",),
    "DOCKER_POOL_READY": (f"{_POOL}.test_filled_at_start",),
    "DOCKER_POOL_FILL_FAILED": (
        f"{_POOL}.test_failed_fill_is_retried_not_hammered",
        "tests.backend.test_warmpool_unit.TemplatePoolTests.test_failure_waits_the_retry_interval",
    ),
    "DOCKER_POOL_HANDOVER": (f"{_POOL}.test_hand_over_applies_the_user_and_refills",),
    "DOCKER_POOL_EMPTY": (f"{_POOL}.test_burst_three_times_the_pool",),
    "DOCKER_POOL_STALE": (f"{_POOL}.test_stopped_container_is_not_handed_over",),
    "DOCKER_POOL_DRAIN": (f"{_POOL}.test_stop_removes_ready_containers",),
    "DOCKER_POOL_UNAVAILABLE": (f"{_POOL}.test_session_mode_has_no_pool",),
}

#: Codes this version of the Docker backend has no situation for, and why. Keep it short.
NOT_PRODUCED: dict[str, str] = {
    "DOCKER_CLOSE_OUTPUT_FAILED": (
        "the gateway never closes the engine's output side itself: the output "
        "ends when the engine ends it (a failure there is DOCKER_STREAM_OUTPUT_FAILED)"
    ),
    "DOCKER_AGENT_LOG": (
        "ContainerSSH logs the stderr of the agent's forwarding server with it; "
        "port, socket and X11 forwarding are not implemented"
    ),
    "DOCKER_AGENT_READ_FAILED": (
        "the one thing read from the agent is its process-id handshake, whose "
        "failure is DOCKER_EXEC_PID_READ_FAILED"
    ),
}


class DockerCodesCoverageTests(CodesCoverageMixin, SynchronousTestCase):
    prefix = "DOCKER_"
    producers = PRODUCERS
    not_produced = NOT_PRODUCED
