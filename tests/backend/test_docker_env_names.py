"""The Docker backend never builds an ``Env`` entry whose name the engine would read differently.

The engine splits every ``Env`` entry at its first ``=``: the entry built from
the name ``LD_PRELOAD=/lib/x.so:`` and the value ``v`` sets ``LD_PRELOAD``.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.logger import ILogObserver
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.docker.containerconfig import merge_env
from conch_container.backend.docker.sessionmode.ops import session_create_request
from conch_container.codes import Level
from conch_container.envnames import InvalidVariable
from conch_container.interfaces import ProgramRequest
from conch_container.log.logger import CodeLogger
from conch_container.metadata import MetadataValue, exposed_metadata
from conch_container.testing.sessionio import RecordingSessionIO
from tests.backend.helpers import DockerBackendTestCase
from tests.backend.test_docker_containerconfig import build
from tests.backend.test_docker_sessionmode_ops import base_request

SMUGGLED = "LD_PRELOAD=/lib/x.so:"


def engine_names(env: list[str]) -> list[str]:
    """The variable names the engine reads from an ``Env`` list."""
    return [entry.partition("=")[0] for entry in env]


class MergeEnvTests(SynchronousTestCase):
    def test_values_may_hold_equals(self) -> None:
        """A value with ``=`` is fine: the engine splits at the first ``=``, the name's end."""
        self.assertEqual(merge_env(["A=1"], [("B", "x=y")]), ["A=1", "B=x=y"])

    def test_unusable_name_refused(self) -> None:
        """A name with ``=`` (or NUL, or not portable) never becomes an entry."""
        for name in [SMUGGLED, "", "PATH\0", "BAD-NAME"]:
            with self.subTest(name=name):
                self.assertRaises(InvalidVariable, merge_env, ["PATH=/bin"], [(name, "v")])

    def test_nul_in_value_refused(self) -> None:
        """A value with a NUL cannot be stored in an environment."""
        self.assertRaises(InvalidVariable, merge_env, [], [("A", "a\0b")])

    def test_connection_container_request(self) -> None:
        """The connection's container request refuses such a variable."""
        self.assertRaises(InvalidVariable, build, env=[(SMUGGLED, "v")])
        body = build(env=[("OK", "1")]).body
        self.assertEqual(engine_names(body["Env"]), ["OK"])

    def test_session_container_request(self) -> None:
        """A session-mode container request refuses such a channel variable."""
        self.assertRaises(
            InvalidVariable, session_create_request, base_request(), ["/x"], [(SMUGGLED, "")], None
        )


class ExposedMetadataTests(SynchronousTestCase):
    def test_entries_that_cannot_be_variables_left_out(self) -> None:
        """Metadata keys that are not portable names are skipped with a warning naming them."""
        events: list[dict[str, Any]] = []
        log = CodeLogger("tests", observer=cast(ILogObserver, events.append))
        metadata = {
            "TEAM": MetadataValue("ops"),
            "team.name": MetadataValue("ops"),
            SMUGGLED: MetadataValue("s3cr3t"),
            "NUL": MetadataValue("a\0b"),
        }
        self.assertEqual(exposed_metadata(metadata, log), [("TEAM", "ops")])
        warned = [
            (e["name"], e["cs_level"]) for e in events if e["code"] == "SECURITY_ENV_REJECTED"
        ]
        self.assertEqual(
            warned,
            [("team.name", Level.WARNING), ("LD_PRELOAD", Level.WARNING), ("NUL", Level.WARNING)],
        )
        self.assertNotIn("s3cr3t", repr(events))


class RealEngineTests(DockerBackendTestCase):
    async def test_exposed_metadata_never_smuggles_a_variable(self) -> None:
        """With ``exposeAuthMetadataAsEnv``, a metadata key ``LD_PRELOAD=/lib/x.so:`` sets nothing.

        The other entries still reach the program, and the connection works.
        """
        connection = await self.connect(
            metadata={SMUGGLED: "v", "META_OK": "yes", "team.name": "ops"},
            environment={"AUTH_OK": "yes"},
            exposeAuthMetadataAsEnv=True,
        )
        session = self.open(connection)
        io = RecordingSessionIO()
        await session.start(
            ProgramRequest("exec", 'echo "[${LD_PRELOAD-unset}] $META_OK $AUTH_OK"'), io
        )
        await io.when_exited()
        self.assertEqual(io.stdout_data, b"[unset] yes yes\n")
        warned = [e["name"] for e in self.events if e.get("code") == "SECURITY_ENV_REJECTED"]
        self.assertEqual(sorted(warned), ["LD_PRELOAD", "team.name"])
