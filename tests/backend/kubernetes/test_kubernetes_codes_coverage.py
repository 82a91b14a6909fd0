"""Every ``KUBERNETES_*`` message code is produced by a test that asserts it.

:data:`PRODUCERS` maps each ``KUBERNETES_*`` code of
:mod:`conch_container.messages` (ContainerSSH's and the project's own) to the
tests (``module.Class.method``) that drive the Kubernetes backend into that
situation and assert the code; :data:`NOT_PRODUCED` lists, with the reason,
the codes this version of the backend has no situation for. The checks are
:mod:`tests.codes_coverage`'s.

When a new ``KUBERNETES_*`` code is added, add its producing test here.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.codes_coverage import CodesCoverageMixin

_K = "tests.backend.kubernetes"
_EXEC = f"{_K}.test_execsession.ExecSessionTests"
_STREAM = f"{_K}.test_execsession.StreamFailureTests"
_FAILURES = f"{_K}.test_backendfailures.BackendFailureTests"
_LIFECYCLE = f"{_K}.test_podlifecycle.PodLifecycleTests"
_PODS = f"{_K}.test_pods.PodAPITests"
_PERSISTENT = f"{_K}.test_persistent.PersistentPodTests"
_INTEGRATION = "tests.integration.test_kubernetes.KubernetesGatewayTests"
_PERSISTENT_GATEWAY = (
    "tests.integration.test_kubernetes_persistent.KubernetesPersistentGatewayTests"
)

#: Each ``KUBERNETES_*`` code -> the tests that produce it and assert it.
PRODUCERS: dict[str, tuple[str, ...]] = {
    "KUBERNETES_GUEST_AGENT_SELECTED": (
        f"{_K}.test_image_agent.ImageAgentConformanceTests.test_the_image_agent_is_chosen",
    ),
    # -- session mode
    "KUBERNETES_POD_ATTACH": (
        "tests.integration.test_kubernetes_sessionmode.KubernetesSessionModeGatewayTests"
        ".test_exec_exit_code_program_is_pid_1",
    ),
    # -- configuration and the API server
    "KUBERNETES_CONFIG_ERROR": (
        f"{_FAILURES}.test_connection_settings_unusable",
        f"{_K}.test_client.KubernetesClientTests.test_cached_per_connection_and_errors_not_cached",
    ),
    # -- the connection's pod
    "KUBERNETES_POD_CREATE": (
        f"{_LIFECYCLE}.test_ready_labelled_then_removed",
        f"{_INTEGRATION}.test_login_runs_in_a_pod_removed_at_disconnect",
    ),
    "KUBERNETES_POD_CREATE_FAILED": (
        f"{_FAILURES}.test_pod_creation_refused",
        f"{_PODS}.test_create_conflict",
    ),
    "KUBERNETES_USERNAME_TOO_LONG": (
        f"{_K}.test_podmanifest.PodManifestTests.test_long_username_left_out",
    ),
    "KUBERNETES_POD_WAIT": (
        f"{_LIFECYCLE}.test_ready_labelled_then_removed",
        f"{_INTEGRATION}.test_login_runs_in_a_pod_removed_at_disconnect",
    ),
    "KUBERNETES_POD_WAIT_FAILED": (
        f"{_PODS}.test_wait_deadline",
        f"{_PODS}.test_wait_survives_server_errors",
    ),
    "KUBERNETES_IMAGE_PULL_FAILED": (
        f"{_LIFECYCLE}.test_image_pull_failure",
        f"{_PODS}.test_image_pull_fails_at_once",
    ),
    "KUBERNETES_GUEST_AGENT_DISABLED": (f"{_EXEC}.test_agent_disabled",),
    "KUBERNETES_POD_REMOVE": (
        f"{_LIFECYCLE}.test_ready_labelled_then_removed",
        f"{_INTEGRATION}.test_login_runs_in_a_pod_removed_at_disconnect",
    ),
    "KUBERNETES_POD_REMOVE_SUCCESSFUL": (
        f"{_LIFECYCLE}.test_ready_labelled_then_removed",
        f"{_INTEGRATION}.test_login_runs_in_a_pod_removed_at_disconnect",
    ),
    "KUBERNETES_POD_REMOVE_FAILED": (
        f"{_FAILURES}.test_pod_removal_refused",
        f"{_PODS}.test_server_gone",
    ),
    "KUBERNETES_POD_LIST_FAILED": (
        f"{_FAILURES}.test_pod_list_refused_at_start",
        f"{_PODS}.test_garbage_answer",
    ),
    "KUBERNETES_POD_SHUTTING_DOWN": (f"{_EXEC}.test_requests_in_the_wrong_state",),
    # -- persistent mode: one named pod that outlives the connections
    "KUBERNETES_POD_LOOKUP": (
        f"{_PERSISTENT}.test_missing_pod_refused",
        f"{_PERSISTENT_GATEWAY}.test_connections_share_the_pod_which_outlives_them",
    ),
    "KUBERNETES_POD_LOOKUP_FAILED": (
        f"{_PERSISTENT}.test_lookup_retried_on_the_clock",
        f"{_PERSISTENT}.test_lookup_gives_up_after_three_tries",
    ),
    "KUBERNETES_POD_NOT_FOUND": (
        f"{_PERSISTENT}.test_missing_pod_refused",
        f"{_K}.test_persistent_conformance.MissingPodTests.test_missing_pod_refused",
    ),
    "KUBERNETES_POD_CREATE_RACE": (
        f"{_PERSISTENT}.test_create_race_joins_the_other_pod",
        f"{_PERSISTENT}.test_two_connections_racing_share_the_pod",
    ),
    "KUBERNETES_POD_KEPT": (
        f"{_PERSISTENT_GATEWAY}.test_connections_share_the_pod_which_outlives_them",
    ),
    # -- programs (connection mode: execs)
    "KUBERNETES_EXEC": (
        f"{_EXEC}.test_program_and_signals_through_the_agent",
        f"{_INTEGRATION}.test_login_runs_in_a_pod_removed_at_disconnect",
    ),
    "KUBERNETES_EXEC_FAILED": (
        f"{_STREAM}.test_dropped_without_exit_status",
        f"{_K}.test_websocket.ChannelStreamTests.test_no_channel_protocol",
    ),
    "KUBERNETES_PID_RECEIVED": (f"{_EXEC}.test_program_and_signals_through_the_agent",),
    "KUBERNETES_EXEC_RESIZE": (f"{_EXEC}.test_requests_in_the_wrong_state",),
    "KUBERNETES_EXEC_RESIZE_FAILED": (f"{_STREAM}.test_resize_while_the_stream_closes",),
    "KUBERNETES_SUBSYSTEM_NOT_SUPPORTED": (f"{_EXEC}.test_requests_in_the_wrong_state",),
    "KUBERNETES_PROGRAM_ALREADY_RUNNING": (f"{_EXEC}.test_requests_in_the_wrong_state",),
    "KUBERNETES_PROGRAM_NOT_RUNNING": (f"{_EXEC}.test_requests_in_the_wrong_state",),
    # -- signals
    "KUBERNETES_EXEC_SIGNAL": (f"{_EXEC}.test_program_and_signals_through_the_agent",),
    "KUBERNETES_EXEC_SIGNAL_SUCCESSFUL": (f"{_EXEC}.test_program_and_signals_through_the_agent",),
    "KUBERNETES_EXEC_SIGNAL_FAILED": (f"{_EXEC}.test_program_and_signals_through_the_agent",),
    "KUBERNETES_EXEC_SIGNAL_FAILED_NO_AGENT": (f"{_EXEC}.test_agent_disabled",),
    "KUBERNETES_SIGNAL_FAILED_NO_PID": (f"{_STREAM}.test_signal_before_the_pid",),
    "KUBERNETES_SIGNAL_FAILED_EXITED": (f"{_EXEC}.test_program_and_signals_through_the_agent",),
    # -- exit codes
    "KUBERNETES_EXIT_CODE_FAILED": (
        f"{_STREAM}.test_dropped_without_exit_status",
        f"{_PODS}.test_exit_code",
    ),
}

#: Codes this version of the Kubernetes backend has no situation for, and why. Keep it short.
NOT_PRODUCED: dict[str, str] = {
    "KUBERNETES_CLOSE_OUTPUT_FAILED": (
        "the gateway never closes the exec's output side itself: the output "
        "ends when the API server ends the stream (a failure there is "
        "KUBERNETES_EXEC_FAILED)"
    ),
}


class KubernetesCodesCoverageTests(CodesCoverageMixin, SynchronousTestCase):
    prefix = "KUBERNETES_"
    producers = PRODUCERS
    not_produced = NOT_PRODUCED
