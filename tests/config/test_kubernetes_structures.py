"""``kubernetes.pod.spec`` and ``pod.metadata``: read against the generated Kubernetes tables.

ContainerSSH decodes them strictly into the Kubernetes Go types: an unknown
key or a value of the wrong type anywhere in them is an error naming its key
path, found when the file is loaded.
"""

from __future__ import annotations

from typing import Any

import yaml
from twisted.trial.unittest import SynchronousTestCase

from conch_container.config import AppConfig, ConfigError, dump_config, parse_config
from conch_container.config.apitable import Field, Table, Value
from conch_container.config.kubernetesapi import OBJECT_META, POD_SPEC
from conch_container.config.loader import decode, read_config_text

from .material import fixture


def with_pod(source_format: str = "yaml", **pod: Any) -> AppConfig:
    data = {"kubernetes": {"pod": pod}}
    return parse_config(data, source_format=source_format)  # type: ignore[arg-type]


def spec_of(**spec: Any) -> dict[str, Any]:
    return with_pod(spec=spec).kubernetes.pod.spec


def container(**fields: Any) -> dict[str, Any]:
    """A spec with one container holding ``fields``."""
    return {"containers": [{"name": "shell", "image": "guest", **fields}]}


class SpecTests(SynchronousTestCase):
    def assertRefused(self, spec: dict[str, Any], path: str, words: str) -> None:
        with self.assertRaises(ConfigError) as raised:
            with_pod(spec=spec)
        self.assertEqual(raised.exception.key_path, f"kubernetes.pod.spec.{path}")
        self.assertIn(words, raised.exception.problem)

    def test_common_fields(self) -> None:
        """Containers, volumes, environment, resources, probes and security contexts read."""
        spec = {
            "containers": [
                {
                    "name": "shell",
                    "image": "guest",
                    "command": ["/bin/sh"],
                    "env": [
                        {"name": "A", "value": "1"},
                        {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    ],
                    "ports": [{"containerPort": 22, "protocol": "TCP"}],
                    "resources": {
                        "limits": {"cpu": "500m", "memory": "128Mi"},
                        "requests": {"cpu": 0.25, "memory": 64000000},
                    },
                    "livenessProbe": {
                        "httpGet": {"path": "/", "port": "http"},
                        "periodSeconds": 10,
                    },
                    "readinessProbe": {"tcpSocket": {"port": 22}},
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 1000,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "home", "mountPath": "/home"}],
                }
            ],
            "volumes": [
                {"name": "home", "hostPath": {"path": "/home", "type": "Directory"}},
                {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                {"name": "cfg", "configMap": {"name": "c", "items": [{"key": "k", "path": "p"}]}},
                {"name": "key", "secret": {"secretName": "s", "defaultMode": 0o400}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "d"}},
            ],
            "restartPolicy": "Never",
            "nodeSelector": {"disk": "ssd"},
            "tolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 5}],
        }
        self.assertEqual(spec_of(**spec), spec)

    def test_fixture_section(self) -> None:
        """A user's section from ContainerSSH report 209 reads."""
        section = decode(
            read_config_text(fixture("kubernetes-section-containerssh-209.yaml")), "yaml"
        )
        config = parse_config({"kubernetes": section})
        self.assertEqual(config.kubernetes.pod.spec["volumes"][0]["hostPath"]["type"], "Directory")

    def test_wrong_types(self) -> None:
        """A wrong type deep in the spec is an error naming its key path."""
        for spec, path, words in (
            (
                container(ports=[{"containerPort": "x"}]),
                "containers[0].ports[0].containerPort",
                "must be an integer, not a string",
            ),
            (
                container(ports=[{"containerPort": 2**31}]),
                "containers[0].ports[0].containerPort",
                "must be between -2147483648 and 2147483647",
            ),
            ({"containers": {"name": "a"}}, "containers", "must be a list, not a mapping"),
            (container(command="/bin/sh"), "containers[0].command", "must be a list"),
            (container(stdin="yes"), "containers[0].stdin", "must be true or false"),
            (
                container(resources={"limits": {"cpu": "lots"}}),
                "containers[0].resources.limits.cpu",
                "is not a quantity",
            ),
            (
                container(resources={"limits": {"cpu": True}}),
                "containers[0].resources.limits.cpu",
                "must be a quantity",
            ),
            (
                container(livenessProbe={"httpGet": {"port": True}}),
                "containers[0].livenessProbe.httpGet.port",
                "must be an integer, not a boolean",
            ),
            ({"nodeSelector": {"a": {"b": "c"}}}, "nodeSelector.a", "must be a string"),
            ({"volumes": [{"name": "v", "hostPath": "/x"}]}, "volumes[0].hostPath", "mapping"),
        ):
            with self.subTest(path=path):
                self.assertRefused(spec, path, words)

    def test_unknown_keys_refused(self) -> None:
        """An unknown key is an error, at any depth, with the likely intended key."""
        self.assertRefused({"containerz": []}, "containerz", 'did you mean "containers"?')
        self.assertRefused(
            container(securityContext={"runAsUsr": 1}),
            "containers[0].securityContext.runAsUsr",
            'did you mean "runAsUser"?',
        )

    def test_names_any_case(self) -> None:
        """Names match in any case, as Go's JSON decoder matches them; the API spelling is held."""
        spec = spec_of(containers=[{"Name": "a", "IMAGE": "b", "imagepullpolicy": "Never"}])
        self.assertEqual(
            spec, {"containers": [{"name": "a", "image": "b", "imagePullPolicy": "Never"}]}
        )

    def test_null_is_omitted(self) -> None:
        """A null leaves the field out, as decoding leaves a Go field at its zero value."""
        self.assertEqual(spec_of(**container(workingDir=None)), container())

    def test_json_source(self) -> None:
        """Read from JSON, the spec follows the same rules."""
        config = with_pod("json", spec=container(ports=[{"containerPort": 22}]))
        self.assertEqual(
            config.kubernetes.pod.spec["containers"][0]["ports"], [{"containerPort": 22}]
        )


class MetadataTests(SynchronousTestCase):
    def test_metadata(self) -> None:
        """Labels, annotations and times read; the default generateName stays."""
        metadata = {
            "namespace": "users",
            "labels": {"team": "a", "n": 1},
            "creationTimestamp": "2024-01-02T03:04:05Z",
        }
        self.assertEqual(
            with_pod(metadata=metadata).kubernetes.pod.metadata,
            {
                "namespace": "users",
                "generateName": "containerssh-",
                "labels": {"team": "a", "n": "1"},
                "creationTimestamp": "2024-01-02T03:04:05Z",
            },
        )

    def test_wrong_values(self) -> None:
        for metadata, path in (
            ({"creationTimestamp": "yesterday"}, "creationTimestamp"),
            ({"labels": ["a"]}, "labels"),
            ({"nmespace": "a"}, "nmespace"),
        ):
            with self.subTest(metadata=metadata):
                with self.assertRaises(ConfigError) as raised:
                    with_pod(metadata=metadata)
                self.assertEqual(raised.exception.key_path, f"kubernetes.pod.metadata.{path}")


class TableTests(SynchronousTestCase):
    def test_generated_tables(self) -> None:
        """The generated tables have the JSON names and kinds of the Kubernetes API."""
        containers = POD_SPEC.find("containers")
        assert containers is not None and containers.table is not None
        port = containers.table.find("ports")
        assert port is not None and port.table is not None
        self.assertEqual(port.table.find("containerPort"), Field("containerPort", Value.INT32))
        resources = containers.table.find("resources")
        assert resources is not None and resources.table is not None
        limits = resources.table.find("limits")
        assert limits is not None
        self.assertIs(limits.value, Value.QUANTITY)
        self.assertEqual(OBJECT_META.find("namespace"), Field("namespace", Value.STR))

    def test_spellings_unique(self) -> None:
        """A table whose fields share a spelling cannot be made."""
        with self.assertRaises(ValueError):
            Table("T", [Field("a", Value.STR), Field("A", Value.INT)])


class DumpTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        """Written back, the objects keep the API's names and read back equal."""
        config = with_pod(
            spec=container(resources={"limits": {"cpu": 1}}, ports=[{"containerPort": 22}]),
            metadata={"labels": {"a": "b"}},
        )
        text = dump_config(config)
        pod = yaml.safe_load(text)["kubernetes"]["pod"]
        self.assertEqual(pod["spec"], config.kubernetes.pod.spec)
        self.assertEqual(parse_config(decode(text, "yaml")), config)
