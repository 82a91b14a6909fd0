"""The pod a connection gets: labels, annotations, environment, idle command."""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import EventLoggingObserver
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.kubernetes.podmanifest import (
    instance_selector,
    label_safe_username,
    pod_manifest,
)
from conch_container.config import parse_config
from conch_container.log.logger import CodeLogger
from conch_container.metadata import ConnectionMetadata, MetadataValue

CONNECTION_ID = "0123456789abcdef0123456789abcdef"


def pod_config(**pod: Any) -> Any:
    """The ``kubernetes.pod`` section of a configuration with ``pod`` set."""
    return parse_config({"backend": "kubernetes", "kubernetes": {"pod": pod}}).kubernetes.pod


def connection(**fields: Any) -> ConnectionMetadata:
    values: dict[str, Any] = {
        "connection_id": CONNECTION_ID,
        "remote_address": "[2001:db8::1]:2222",
        "username": "login",
        "authenticated_username": "alice@example.com",
        **fields,
    }
    return ConnectionMetadata(**values)


class PodManifestTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events = EventLoggingObserver()
        self.log = CodeLogger("tests", observer=self.events)

    def build(self, pod: Any, metadata: ConnectionMetadata | None = None) -> dict[str, Any]:
        return pod_manifest(pod, metadata or connection(), instance_id="gateway-1", log=self.log)

    def test_labels_and_annotations(self) -> None:
        """ContainerSSH's labels, the sanitised username, the address annotation, our instance."""
        manifest = self.build(pod_config(metadata={"namespace": "users", "labels": {"a": "b"}}))
        self.assertEqual(
            manifest["metadata"]["labels"],
            {
                "a": "b",
                "containerssh_connection_id": CONNECTION_ID,
                "containerssh_username": "alice-example.com",
                "conch_container_instance": "gateway-1",
            },
        )
        self.assertEqual(manifest["metadata"]["annotations"], {"containerssh_ip": "2001-db8--1"})
        self.assertEqual(manifest["metadata"]["namespace"], "users")

    def test_instance_label_not_overridden(self) -> None:
        """A configured label of the instance's name cannot hide the pod from clean-up."""
        manifest = self.build(
            pod_config(metadata={"namespace": "u", "labels": {"conch_container_instance": "x"}})
        )
        self.assertEqual(manifest["metadata"]["labels"]["conch_container_instance"], "gateway-1")
        self.assertEqual(instance_selector("gateway-1"), "conch_container_instance=gateway-1")

    def test_long_username_left_out(self) -> None:
        """A username longer than a label value is left out, with a warning."""
        manifest = self.build(pod_config(), connection(authenticated_username="u" * 64))
        self.assertNotIn("containerssh_username", manifest["metadata"]["labels"])
        self.assertEqual(
            [(e["code"], e["log_level"].name) for e in self.events],
            [("KUBERNETES_USERNAME_TOO_LONG", "warn")],
        )

    def test_username_of_63_kept(self) -> None:
        manifest = self.build(pod_config(), connection(authenticated_username="u" * 63))
        self.assertEqual(manifest["metadata"]["labels"]["containerssh_username"], "u" * 63)
        self.assertEqual(list(self.events), [])

    def test_sanitising(self) -> None:
        self.assertEqual(label_safe_username("a_b c|d.e"), "a-b-c-d.e")

    def test_exposed_metadata(self) -> None:
        """exposeAuthMetadataAs{Env,Labels,Annotations} map the entries that exist."""
        pod = pod_config(
            exposeAuthMetadataAsEnv={"team": "TEAM", "missing": "NOPE"},
            exposeAuthMetadataAsLabels={"team": "team"},
            exposeAuthMetadataAsAnnotations={"team": "example.com/team"},
        )
        manifest = self.build(
            pod,
            connection(
                metadata={"team": MetadataValue("blue")},
                environment={"LANG": MetadataValue("C")},
            ),
        )
        self.assertEqual(manifest["metadata"]["labels"]["team"], "blue")
        self.assertEqual(manifest["metadata"]["annotations"]["example.com/team"], "blue")
        [container] = manifest["spec"]["containers"]
        self.assertEqual(
            container["env"], [{"name": "TEAM", "value": "blue"}, {"name": "LANG", "value": "C"}]
        )

    def test_environment_in_every_container(self) -> None:
        """Environment goes into every (init) container; the idle command into the console."""
        pod = pod_config(
            spec={
                "containers": [
                    {"name": "side", "image": "a", "env": [{"name": "X", "value": "1"}]},
                    {"name": "shell", "image": "b", "args": ["ignored"]},
                ],
                "initContainers": [{"name": "init", "image": "c"}],
            },
            consoleContainerNumber=1,
            idleCommand=["/bin/idle", "forever"],
        )
        manifest = self.build(pod, connection(environment={"LANG": MetadataValue("C")}))
        side, shell = manifest["spec"]["containers"]
        [init] = manifest["spec"]["initContainers"]
        self.assertEqual(side["env"], [{"name": "X", "value": "1"}, {"name": "LANG", "value": "C"}])
        self.assertEqual(init["env"], [{"name": "LANG", "value": "C"}])
        self.assertEqual(shell["command"], ["/bin/idle", "forever"])
        self.assertNotIn("args", shell)
        self.assertNotIn("command", side)

    def test_configuration_unchanged(self) -> None:
        pod = pod_config(metadata={"namespace": "u", "labels": {"a": "b"}})
        self.build(pod, connection(environment={"LANG": MetadataValue("C")}))
        self.assertEqual(pod.metadata["labels"], {"a": "b"})
        self.assertNotIn("env", pod.spec["containers"][0])
        self.assertNotIn("command", pod.spec["containers"][0])

    def test_name(self) -> None:
        """generateName is kept; without it nor a name, the pod is named after the connection."""
        kept = self.build(pod_config())
        self.assertEqual(kept["metadata"]["generateName"], "containerssh-")
        self.assertNotIn("name", kept["metadata"])
        named = self.build(pod_config(metadata={"namespace": "u", "generateName": ""}))
        self.assertEqual(named["metadata"]["name"], f"containerssh-{CONNECTION_ID}")
