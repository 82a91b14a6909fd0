"""Fuzz targets: every parser that reads outside input, driven by hypothesis.

Each target feeds a parser what an operator, a client, a webhook server or
the Docker engine could send it, and asserts that the only exception that
comes out is the one the parser documents, that nothing hangs, and, where an
encoder exists, that valid values survive the round trip. Each target also
counts how its cases ended (:func:`note`) and fails when a kind of outcome it
must reach never happened, so a strategy that stopped reaching deep into its
parser shows up as a failure rather than as a quiet pass.

Targets, by module (parser: the only error it may raise):

``test_config``
    ``load_config``/``parse_config``/``decode``/``merge_config`` and
    ``validate_config``: ``ConfigError``. Mutated copies of the real
    ContainerSSH files in ``tests/config/fixtures``, random text, random
    bytes and invalid UTF-8.
``test_host_keys``
    PEM values, corrupted in every format the gateway reads: host keys in
    ``validate_config`` (``ConfigError``) and ``load_host_keys``
    (``ContainerSSHError``), webhook ``cacert``/``cert``/``key``
    (``TLSConfigError``).
``test_durations``
    ``parse_duration`` (Go ``time.Duration`` text): ``ValueError``; round trip
    with ``format_duration``.
``test_webhook_responses``
    ``decode_auth_response`` (password, public-key and authz answers):
    ``ProtocolError``; ``WebhookClient.post`` on arbitrary answer bytes:
    ``WebhookDecodeError``.
``test_agent_handshake``
    the guest agent's PID handshake in ``ExecStreamProtocol`` (framed and
    terminal streams, any chunking): no exception, the result the same for
    every split, and equal to a reference reading.
``test_ssh_requests``
    ``conch_container.ssh.requests`` (``pty-req`` with terminal modes,
    ``env``, ``signal``, ``window-change``, ``exec``, ``subsystem``, the
    ``PayloadReader``): ``PayloadError`` (``env`` also ``VariableRefused``);
    round trips with ``encode_modes``, ``exit_request`` and Conch's packers.
``test_users_file``
    ``parse_users`` and ``parse_public_key`` (static users):
    ``StaticUsersError`` / ``ValueError``.
``test_test_webhook_requests``
    ``AuthConfigResource`` (the test webhook server) on mutated request
    bodies and arbitrary bytes: status 200, 400 or 413, never 500, with only
    the documented fields.
``test_api_structures``
    the settings read against API field tables: ``docker.execution``
    container, host, network and platform (then
    ``execution_create_request``), ``kubernetes.pod`` spec and metadata:
    ``ConfigError`` (``InvalidVariable`` for the request's environment).
``test_names``
    log ``Level``, log format names, SSH algorithm lists
    (``select_algorithms``), TLS cipher and curve names: ``ValueError`` /
    ``ContainerSSHError`` / ``TLSConfigError``; and the ``text``/``ljson``
    log lines stay one line whatever the values carry.
``test_exec_command``
    ``split_plain_command`` (what an ``exec`` request runs): never raises;
    agrees with a POSIX shell's word splitting.
``test_engine_answers``
    the Docker engine's answers: ``poll_exit_code`` never raises and gives a
    code the SSH channel can send; ``usable_agent`` never raises.
``test_audit_decoder``
    ``BinaryLogReader`` (binary audit logs): ``AuditLogFormatError`` for a
    file that is not a log; otherwise the messages read and a warning.
    Arbitrary bytes, any body after a valid header, and mutated copies of
    ContainerSSH's ``auditlog-v1-0.4.0.bin`` (its gzip stream and its CBOR).

An undocumented exception a target found and that is not fixed yet is listed
in :mod:`tests.fuzz.known_bugs` (empty today; docs/fuzzing.md lists what was
found and fixed): targets count it and go on, and a regression test with its
minimal input fails until it is fixed.

Profiles: the suite runs each target with :data:`SHORT_EXAMPLES` cases.
Setting ``CONCH_CONTAINER_FUZZ_EXAMPLES`` to a number selects the long
profile with that many cases per target (``scripts/fuzz`` uses 10,000). No
example database is kept. When ``CONCH_CONTAINER_FUZZ_STATS`` names a file,
each target appends one JSON line to it: cases run, CPU and wall time, and
its outcome counts.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import os
import signal
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from types import FrameType
from typing import Any

from hypothesis import HealthCheck, given, settings

#: Cases per target in the ordinary test suite.
SHORT_EXAMPLES = 60
#: Names of the two registered profiles.
SHORT_PROFILE = "conch-container-fuzz"
LONG_PROFILE = "conch-container-fuzz-long"
#: The environment variable that selects the long profile (its value: cases per target).
EXAMPLES_VARIABLE = "CONCH_CONTAINER_FUZZ_EXAMPLES"
#: The environment variable naming the file per-target figures are appended to.
STATS_VARIABLE = "CONCH_CONTAINER_FUZZ_STATS"

settings.register_profile(
    SHORT_PROFILE,
    max_examples=SHORT_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=False,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


def _long_examples() -> int | None:
    value = os.environ.get(EXAMPLES_VARIABLE, "").strip()
    if not value:
        return None
    examples = int(value)
    if examples < 1:
        raise ValueError(f"{EXAMPLES_VARIABLE} must be a positive number, not {value!r}")
    return examples


settings.register_profile(
    LONG_PROFILE,
    parent=settings.get_profile(SHORT_PROFILE),
    max_examples=_long_examples() or 10_000,
)

#: The settings every target runs with. Applied per test, never loaded
#: globally, so the rest of the suite keeps its own hypothesis settings.
FUZZ_SETTINGS = settings.get_profile(LONG_PROFILE if _long_examples() else SHORT_PROFILE)


#: Wall-clock seconds one case may take before it counts as a hang.
CASE_LIMIT = 60.0


class Hang(Exception):
    """A case ran longer than :data:`CASE_LIMIT`."""


@contextlib.contextmanager
def no_hang(seconds: float = CASE_LIMIT) -> Iterator[None]:
    """Raise :class:`Hang` inside the block when it runs longer than ``seconds``.

    The limit is generous (the machine may be busy): it is there to turn a
    parser that loops forever into a failure with a falsifying example.
    """

    def expired(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"the case ran longer than {seconds:g} seconds")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Run:
    """The counts of the target that is running."""

    def __init__(self) -> None:
        self.cases = 0
        self.outcomes: collections.Counter[str] = collections.Counter()


_current: _Run | None = None


def note(outcome: str) -> None:
    """Count one way a case ended (``"parsed"``, ``"rejected"``...) for the running target."""
    if _current is not None:
        _current.outcomes[outcome] += 1


def _record(name: str, run: _Run, cpu: float, wall: float, failed: bool) -> None:
    path = os.environ.get(STATS_VARIABLE)
    if not path:
        return
    line = {
        "target": name,
        "cases": run.cases,
        "cpu_seconds": round(cpu, 3),
        "wall_seconds": round(wall, 3),
        "failed": failed,
        "outcomes": dict(sorted(run.outcomes.items())),
    }
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(line) + "\n")


def fuzz(
    *strategies: Any,
    expect: Iterable[str] = (),
    **named: Any,
) -> Callable[[Callable[..., None]], Callable[[Any], None]]:
    """Turn a test method into a fuzz target: ``@given`` with the fuzz profile, counted.

    ``@example`` decorators go below this one. Each case runs under
    :func:`no_hang`. After the run, every outcome in ``expect`` must have
    been noted at least once (see :func:`note`).
    """
    wanted = tuple(expect)

    def decorate(test: Callable[..., None]) -> Callable[[Any], None]:
        name = f"{test.__module__.removeprefix('tests.fuzz.')}.{test.__qualname__}"

        @functools.wraps(test)
        def case(self: Any, *args: Any, **kwargs: Any) -> None:
            if _current is not None:
                _current.cases += 1
            with no_hang():
                test(self, *args, **kwargs)

        run_cases = FUZZ_SETTINGS(given(*strategies, **named)(case))

        def target(self: Any) -> None:
            global _current
            run = _current = _Run()
            cpu, wall = time.process_time(), time.monotonic()
            failed = True
            try:
                try:
                    run_cases(self)
                except Exception as error:
                    # Trial shows neither the notes hypothesis attaches (the
                    # falsifying example, how to reproduce it) nor the parts
                    # of an exception group; the whole report goes in the message.
                    self.fail("".join(traceback.format_exception(error)))
                missing = [outcome for outcome in wanted if not run.outcomes[outcome]]
                if missing:
                    self.fail(
                        f"no case ended as {', '.join(missing)} in {run.cases} cases "
                        f"(outcomes: {dict(run.outcomes)}): the strategy no longer reaches them"
                    )
                failed = False
            finally:
                _current = None
                _record(name, run, time.process_time() - cpu, time.monotonic() - wall, failed)

        target.__name__ = test.__name__
        target.__qualname__ = test.__qualname__
        target.__doc__ = test.__doc__
        target.__module__ = test.__module__
        return target

    return decorate
