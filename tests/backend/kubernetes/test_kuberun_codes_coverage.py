"""Every ``KUBERUN_*`` message code is produced by a test that asserts it.

KubeRun is ContainerSSH's deprecated Kubernetes backend: its configuration
section is read and translated into the ``kubernetes`` backend's, with
warnings (:mod:`conch_container.config.kuberun`), and its ``disableCommand``
becomes a security rule that refuses execs (:mod:`conch_container.security`).
The checks are :mod:`tests.codes_coverage`'s.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.codes_coverage import CodesCoverageMixin

_KUBERUN = "tests.config.test_kuberun.WarningTests"
_EXEC = "tests.security.test_kuberun_exec"

#: Each ``KUBERUN_*`` code -> the tests that produce it and assert it.
PRODUCERS: dict[str, tuple[str, ...]] = {
    "KUBERUN_DEPRECATED": (
        f"{_KUBERUN}.test_deprecated_once",
        "tests.config.test_kuberun_load.CommandTests.test_check_config",
    ),
    "KUBERUN_INSECURE": (f"{_KUBERUN}.test_insecure_accepted_with_opt_in",),
    "KUBERUN_EXEC_DISABLED": (
        f"{_EXEC}.FilterTests.test_refusal_logged",
        f"{_EXEC}.SSHTests.test_exec_fails_shell_runs",
    ),
}


class KubeRunCodesCoverageTests(CodesCoverageMixin, SynchronousTestCase):
    prefix = "KUBERUN_"
    producers = PRODUCERS
