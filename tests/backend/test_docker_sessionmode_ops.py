"""Session mode's stateless parts: the container request, exit status, files archive, removal."""

from __future__ import annotations

import io
import tarfile
from typing import Any, cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import ILogObserver
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.docker.containerconfig import CreateRequest
from conch_container.backend.docker.engine.errors import EngineError
from conch_container.backend.docker.execops import UNKNOWN_EXIT_CODE
from conch_container.backend.docker.sessionmode.archive import (
    ROOT,
    FileOwner,
    container_path,
    file_owner,
    files_archive,
    resolve_files,
)
from conch_container.backend.docker.sessionmode.ops import (
    fetch_container_exit_code,
    place_files,
    remove_container,
    session_create_request,
)
from conch_container.interfaces import PtyRequest
from conch_container.log.logger import CodeLogger
from conch_container.metadata import FileValue


def base_request(**body: Any) -> CreateRequest:
    return CreateRequest(
        body={
            "Image": "guest",
            "Cmd": ["/idle"],
            "Env": ["A=config", "AUTH=auth"],
            "Labels": {"containerssh_connection_id": "c1"},
            **body,
        },
        name=None,
        platform=None,
        image="guest",
    )


class Recorder:
    """A logger and the codes it logged."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.log = CodeLogger("tests.sessionmode", observer=cast(ILogObserver, self.events.append))

    @property
    def codes(self) -> list[str]:
        return [e["code"] for e in self.events]


class SessionRequestTests(SynchronousTestCase):
    def test_program_streams_and_env(self) -> None:
        """The program is Cmd; streams attached, stdin once; channel env then TERM appended."""
        base = base_request()
        request = session_create_request(
            base,
            ["/bin/sh", "-c", "x"],
            [("FOO", "1"), ("A", "channel")],
            PtyRequest("vt100", 90, 30),
        )
        body = request.body
        self.assertEqual(body["Cmd"], ["/bin/sh", "-c", "x"])
        self.assertEqual(body["Env"], ["A=channel", "AUTH=auth", "FOO=1", "TERM=vt100"])
        for key in ("Tty", "OpenStdin", "StdinOnce", "AttachStdin", "AttachStdout", "AttachStderr"):
            self.assertIs(body[key], True, key)
        self.assertEqual(
            body["HostConfig"], {"AutoRemove": False, "Init": True, "ConsoleSize": [30, 90]}
        )
        self.assertEqual(body["Labels"], {"containerssh_connection_id": "c1"})
        # The connection's request is left as it was.
        self.assertEqual(base.body["Cmd"], ["/idle"])
        self.assertNotIn("HostConfig", base.body)

    def test_no_tty(self) -> None:
        """Without a pty there is no TERM, no console size, and Tty is off."""
        body = session_create_request(base_request(), ["/bin/true"], [], None).body
        self.assertIs(body["Tty"], False)
        self.assertEqual(body["Env"], ["A=config", "AUTH=auth"])
        self.assertNotIn("ConsoleSize", body["HostConfig"])

    def test_configured_init_and_autoremove(self) -> None:
        """A configured Init is kept; AutoRemove is always off (the gateway removes)."""
        base = base_request(HostConfig={"Init": False, "AutoRemove": True, "Memory": 5})
        host = session_create_request(base, ["/x"], [], None).body["HostConfig"]
        self.assertEqual(host, {"Init": False, "AutoRemove": False, "Memory": 5})


class FakeStateEngine:
    """``container_state`` answers from a list (the last answer repeats)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls = 0

    def container_state(self, container_id: str) -> Deferred[dict[str, Any]]:
        self.calls += 1
        answer = self.answers[0] if len(self.answers) == 1 else self.answers.pop(0)
        if isinstance(answer, Exception):
            return fail(answer)
        return succeed(answer)


class FetchExitCodeTests(SynchronousTestCase):
    def fetch(self, engine: FakeStateEngine, advance: float = 0.0) -> tuple[list[int], Recorder]:
        clock = Clock()
        recorder = Recorder()
        results: list[int] = []
        d = Deferred.fromCoroutine(fetch_container_exit_code(clock, engine, "cid", recorder.log))
        d.addCallback(results.append)
        for _ in range(200):
            if results:
                break
            clock.advance(1.0)
        return results, recorder

    def test_exited(self) -> None:
        """A stopped container's exit code is returned and logged."""
        results, recorder = self.fetch(FakeStateEngine({"Running": False, "ExitCode": 7}))
        self.assertEqual(results, [7])
        self.assertEqual(recorder.codes, ["DOCKER_EXIT_CODE"])

    def test_polls_while_running(self) -> None:
        """The state is polled again while the engine still reports the container running."""
        engine = FakeStateEngine(
            {"Running": True}, {"Running": True}, {"Running": False, "ExitCode": 3}
        )
        results, _ = self.fetch(engine)
        self.assertEqual((results, engine.calls), ([3], 3))

    def test_still_running(self) -> None:
        """A container that keeps running gives the unknown code after 60 s."""
        results, recorder = self.fetch(FakeStateEngine({"Running": True}))
        self.assertEqual(results, [UNKNOWN_EXIT_CODE])
        self.assertEqual(recorder.codes, ["DOCKER_EXIT_CODE_STILL_RUNNING"])

    def test_restarting(self) -> None:
        """A container that keeps restarting is reported with its own code."""
        results, recorder = self.fetch(FakeStateEngine({"Running": True, "Restarting": True}))
        self.assertEqual(results, [UNKNOWN_EXIT_CODE])
        self.assertEqual(recorder.codes, ["DOCKER_EXIT_CODE_CONTAINER_RESTARTING"])

    def test_negative_missing_failed(self) -> None:
        """A negative code, no code, or an engine error give the unknown code, each logged."""
        for answer, code in (
            ({"Running": False, "ExitCode": -1}, "DOCKER_EXIT_CODE_NEGATIVE"),
            ({"Running": False}, "DOCKER_EXIT_CODE_FAILED"),
            ({"Running": False, "ExitCode": True}, "DOCKER_EXIT_CODE_FAILED"),
            (EngineError("gone", 404), "DOCKER_EXIT_CODE_FAILED"),
        ):
            results, recorder = self.fetch(FakeStateEngine(answer))
            self.assertEqual((results, recorder.codes), ([UNKNOWN_EXIT_CODE], [code]))


class ArchiveTests(SynchronousTestCase):
    def test_owner(self) -> None:
        """Numeric users own the files; names and an empty user mean root."""
        self.assertEqual(file_owner(None), ROOT)
        self.assertEqual(file_owner(""), ROOT)
        self.assertEqual(file_owner("1000"), FileOwner(1000, 0))
        self.assertEqual(file_owner("1000:50"), FileOwner(1000, 50))
        for name in ("alice", "alice:50", "1000:staff", "-1", " 1"):
            self.assertEqual(file_owner(name), ROOT, name)

    def test_paths(self) -> None:
        """Paths are normalised, relative to the working directory; non-files are refused."""
        self.assertEqual(container_path("/home/a/../b/./f"), "/home/b/f")
        self.assertEqual(container_path("f", "/work"), "/work/f")
        self.assertEqual(container_path("f", None), "/f")
        self.assertEqual(container_path("f", "relative"), "/f")
        self.assertEqual(container_path("/../../etc/x"), "/etc/x")
        self.assertEqual(container_path("//x"), "/x")
        for bad in ("", "/", "/..", "/dir/", "a\0b"):
            self.assertIsNone(container_path(bad), bad)

    def test_archive(self) -> None:
        """Each file is a regular member, mode 0600, with the owner and time given."""
        data = files_archive([("/home/a/f", b"one"), ("/x", b"")], FileOwner(7, 8), 1000.5)
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            members = archive.getmembers()
            self.assertEqual([m.name for m in members], ["home/a/f", "x"])
            for member in members:
                self.assertTrue(member.isreg())
                self.assertEqual((member.mode, member.uid, member.gid), (0o600, 7, 8))
                self.assertEqual(member.mtime, 1000)
            extracted = archive.extractfile(members[0])
            assert extracted is not None
            self.assertEqual(extracted.read(), b"one")

    def test_resolve(self) -> None:
        """FileValues and bytes are placeable; bad paths are reported."""
        placeable, refused = resolve_files(
            {"/a": FileValue(b"1"), "b": b"2", "/": b"3", "/c/": FileValue(b"4")}, "/w"
        )
        self.assertEqual(placeable, [("/a", b"1"), ("/w/b", b"2")])
        self.assertEqual(refused, ["/", "/c/"])


class FakeArchiveEngine:
    def __init__(self, error: EngineError | None = None) -> None:
        self.error = error
        self.calls: list[tuple[str, str, bytes]] = []

    def put_archive(self, container_id: str, path: str, data: bytes) -> Deferred[None]:
        self.calls.append((container_id, path, data))
        return fail(self.error) if self.error is not None else succeed(None)


class PlaceFilesTests(SynchronousTestCase):
    def place(
        self, engine: FakeArchiveEngine, files: dict[str, object], **body: Any
    ) -> tuple[Any, Recorder]:
        recorder = Recorder()
        results: list[bool] = []
        Deferred.fromCoroutine(
            place_files(Clock(), engine, "cid", base_request(**body), files, recorder.log)
        ).addCallback(results.append)
        return results, recorder

    def test_nothing(self) -> None:
        """No files, no engine call."""
        engine = FakeArchiveEngine()
        results, recorder = self.place(engine, {})
        self.assertEqual((results, engine.calls, recorder.codes), ([True], [], []))

    def test_put(self) -> None:
        """One archive is extracted at / with the configured user as owner."""
        engine = FakeArchiveEngine()
        results, recorder = self.place(
            engine, {"f": FileValue(b"x")}, User="1000:1000", WorkingDir="/home/u"
        )
        self.assertEqual(results, [True])
        [(container_id, path, data)] = engine.calls
        self.assertEqual((container_id, path), ("cid", "/"))
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            [member] = archive.getmembers()
        self.assertEqual((member.name, member.uid, member.gid), ("home/u/f", 1000, 1000))
        self.assertEqual(recorder.codes, ["DOCKER_FILE_WRITE"])

    def test_failures_logged(self) -> None:
        """A refused path and an engine error are warnings; nothing raises."""
        engine = FakeArchiveEngine(EngineError("read-only file system"))
        results, recorder = self.place(engine, {"/": b"x", "/ok": b"y"})
        self.assertEqual(results, [False])
        self.assertEqual(
            recorder.codes,
            ["DOCKER_FILE_WRITE_FAILED", "DOCKER_FILE_WRITE", "DOCKER_FILE_WRITE_FAILED"],
        )


class FakeRemoveEngine:
    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls = 0

    def remove_container(self, container_id: str) -> Deferred[bool]:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            return fail(answer)
        if answer is None:
            return Deferred()  # never answers
        return succeed(answer)


class RemoveContainerTests(SynchronousTestCase):
    def remove(
        self, engine: FakeRemoveEngine, deadline: float
    ) -> tuple[list[bool], Recorder, Clock]:
        clock = Clock()
        recorder = Recorder()
        results: list[bool] = []
        Deferred.fromCoroutine(
            remove_container(
                clock, engine, "cid", deadline=deadline, retry_interval=10.0, log=recorder.log
            )
        ).addCallback(results.append)
        return results, recorder, clock

    def test_removed(self) -> None:
        """One successful call."""
        results, recorder, _ = self.remove(FakeRemoveEngine(True), 60)
        self.assertEqual(results, [True])
        self.assertEqual(
            recorder.codes, ["DOCKER_CONTAINER_REMOVE", "DOCKER_CONTAINER_REMOVE_SUCCESSFUL"]
        )

    def test_retried(self) -> None:
        """A failure is retried after the interval; an already-gone container counts as removed."""
        engine = FakeRemoveEngine(EngineError("busy"), False)
        results, recorder, clock = self.remove(engine, 60)
        self.assertEqual(results, [])
        clock.advance(10)
        self.assertEqual((results, engine.calls), ([True], 2))
        self.assertIn("DOCKER_CONTAINER_REMOVE_FAILED", recorder.codes)

    def test_gives_up_at_deadline(self) -> None:
        """A call that hangs past the deadline ends the attempts with a failure."""
        results, recorder, clock = self.remove(FakeRemoveEngine(None), 5)
        clock.advance(5)
        self.assertEqual(results, [False])
        self.assertEqual(recorder.codes[-1], "DOCKER_CONTAINER_REMOVE_FAILED")
