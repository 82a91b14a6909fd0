"""Tests for conch_container.backend.docker.containerconfig: a loaded execution to a create request.

How the settings themselves are read and checked is the configuration's
business (tests/config/test_docker_structures.py).
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.docker.containerconfig import (
    ContainerConfigError,
    CreateRequest,
    execution_create_request,
    merge_env,
)
from conch_container.config import DockerExecutionConfig, parse_config


def loaded(**settings: Any) -> DockerExecutionConfig:
    """A ``docker.execution`` section as loading a file gives it."""
    values: dict[str, Any] = {"container": {"image": "guest"}, "idleCommand": ["/bin/idle"]}
    values.update(settings)
    return parse_config({"docker": {"execution": values}}).docker.execution


def build(
    env: list[tuple[str, str]] | None = None,
    labels: dict[str, str] | None = None,
    **settings: Any,
) -> CreateRequest:
    return execution_create_request(
        loaded(**settings),
        labels={"containerssh_connection_id": "c1"} if labels is None else labels,
        env=env or [],
    )


class CreateRequestTests(SynchronousTestCase):
    def test_body_is_the_loaded_container(self) -> None:
        """The body is the configured container, in the Engine API JSON the configuration holds."""
        request = build(container={"image": "guest", "workingdir": "/w", "user": 1000})
        self.assertEqual(request.body["WorkingDir"], "/w")
        self.assertEqual(request.body["User"], "1000")
        self.assertEqual(request.image, "guest")
        json.dumps(request.body, allow_nan=False)

    def test_cmd_replaced(self) -> None:
        """Cmd is always the idle command; the image entrypoint is kept."""
        request = build(container={"image": "guest", "cmd": ["/bin/other"]})
        self.assertEqual(request.body["Cmd"], ["/bin/idle"])
        self.assertNotIn("Entrypoint", request.body)

    def test_labels_added(self) -> None:
        """The connection labels are added to the configured ones and win."""
        request = build(
            container={"image": "g", "labels": {"team": "x", "containerssh_connection_id": "fake"}}
        )
        self.assertEqual(request.body["Labels"], {"team": "x", "containerssh_connection_id": "c1"})

    def test_env_appended(self) -> None:
        """Authentication environment is appended; a later value replaces an earlier one."""
        request = build(
            container={"image": "g", "env": ["A=1", "B=2"]}, env=[("B", "3"), ("C", "4")]
        )
        self.assertEqual(request.body["Env"], ["A=1", "B=3", "C=4"])

    def test_host_and_network(self) -> None:
        """HostConfig and NetworkingConfig are embedded in the body when configured."""
        request = build(
            host={"autoremove": True, "resources": {"memory": 64 << 20}},
            network={"endpointsconfig": {"n": {}}},
        )
        self.assertEqual(request.body["HostConfig"], {"AutoRemove": True, "Memory": 64 << 20})
        self.assertEqual(request.body["NetworkingConfig"], {"EndpointsConfig": {"n": {}}})
        self.assertEqual(build().body.get("HostConfig"), None)

    def test_configuration_not_changed(self) -> None:
        """The request is a copy: changing it leaves the configuration as it was."""
        execution = loaded(container={"image": "g", "labels": {"a": "1"}}, host={"init": True})
        request = execution_create_request(execution, labels={"b": "2"}, env=[("C", "3")])
        request.body["HostConfig"]["Init"] = False
        self.assertEqual(execution.container, {"Image": "g", "Labels": {"a": "1"}})
        self.assertEqual(execution.host, {"Init": True})

    def test_name_and_platform(self) -> None:
        """containername and platform become query parameters."""
        request = build(containername="fixed", platform={"architecture": "amd64"})
        self.assertEqual(request.name, "fixed")
        self.assertEqual(request.platform, "linux/amd64")
        request = build(platform={"os": "linux", "architecture": "arm", "variant": "v7"})
        self.assertEqual(request.platform, "linux/arm/v7")
        self.assertIsNone(build().name)
        self.assertIsNone(build().platform)

    def test_image_required(self) -> None:
        """An execution section without an image (not one loaded from a file) is refused."""
        execution = attrs.evolve(loaded(), container={"User": "x"})
        with self.assertRaises(ContainerConfigError) as raised:
            execution_create_request(execution, labels={}, env=[])
        self.assertEqual(raised.exception.path, "docker.execution.container.image")


class MergeEnvTests(SynchronousTestCase):
    @given(
        st.lists(
            st.tuples(
                st.text(st.sampled_from("ABC_"), min_size=1, max_size=3),
                # A NUL cannot be in a value a program receives; merge_env refuses it.
                st.text(st.characters(exclude_characters="\0"), max_size=5),
            ),
            max_size=10,
        )
    )
    def test_merge_env_last_wins(self, pairs: list[tuple[str, str]]) -> None:
        """merge_env keeps one entry per name, holding the last value given."""
        merged = merge_env([], pairs)
        names = [entry.partition("=")[0] for entry in merged]
        self.assertEqual(len(names), len(set(names)))
        self.assertEqual(dict(entry.partition("=")[::2] for entry in merged), dict(pairs))
