"""Docker's container, host, network and platform settings: read against the Engine API tables.

``docker.execution.container`` / ``host`` / ``network`` / ``platform`` are
checked field by field as the file is loaded, held in Engine API JSON, and
written back in ContainerSSH's YAML spelling.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import yaml
from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.config import AppConfig, ConfigError, dump_config, parse_config
from conch_container.config.dockerapi import (
    CONTAINER_CONFIG,
    HOST_CONFIG,
    HOST_CONFIG_FLAT,
    NETWORKING_CONFIG,
    PLATFORM,
    RESOURCES,
)
from conch_container.config.loader import decode

from .material import fixture


def loaded(source_format: str = "yaml", **execution: Any) -> AppConfig:
    data = {"docker": {"execution": execution}}
    return parse_config(data, source_format=source_format)  # type: ignore[arg-type]


def read(setting: str, raw: Any) -> Any:
    """``docker.execution.<setting>`` as the configuration holds it after reading ``raw``."""
    return getattr(loaded(**{setting: raw}).docker.execution, setting)


def refused(setting: str, raw: Any) -> ConfigError:
    """The error reading ``raw`` as ``docker.execution.<setting>`` gives."""
    try:
        loaded(**{setting: raw})
    except ConfigError as error:
        return error
    raise AssertionError(f"{raw!r} was accepted as {setting}")


def unknown_keys(config: AppConfig) -> list[str]:
    return [w.key_path for w in config.warnings if w.code is messages.CONFIG_DOCKER_UNKNOWN_KEY]


class ContainerTests(SynchronousTestCase):
    def test_yaml_names(self) -> None:
        """Lower-cased Go field names become Engine API names."""
        config = loaded(
            container={
                "image": "i",
                "hostname": "h",
                "domainname": "d",
                "user": "1000",
                "attachstdin": True,
                "workingdir": "/w",
                "env": ["A=1"],
                "entrypoint": "/init",
                "exposedports": {"22/tcp": {}},
                "volumes": {"/data": None},
                "networkdisabled": True,
                "stopsignal": "SIGTERM",
                "stoptimeout": 5,
                "labels": {"a": "b"},
                "openstdin": False,
                "stdinonce": False,
                "tty": False,
                "macaddress": "02:42:ac:11:00:02",
                "onbuild": ["RUN x"],
                "shell": ["/bin/sh", "-c"],
                "argsescaped": False,
            }
        )
        self.assertEqual(unknown_keys(config), [])
        self.assertEqual(
            config.docker.execution.container,
            {
                "Image": "i",
                "Hostname": "h",
                "Domainname": "d",
                "User": "1000",
                "AttachStdin": True,
                "WorkingDir": "/w",
                "Env": ["A=1"],
                "Entrypoint": ["/init"],
                "ExposedPorts": {"22/tcp": {}},
                "Volumes": {"/data": {}},
                "NetworkDisabled": True,
                "StopSignal": "SIGTERM",
                "StopTimeout": 5,
                "Labels": {"a": "b"},
                "OpenStdin": False,
                "StdinOnce": False,
                "Tty": False,
                "MacAddress": "02:42:ac:11:00:02",
                "OnBuild": ["RUN x"],
                "Shell": ["/bin/sh", "-c"],
                "ArgsEscaped": False,
            },
        )

    def test_api_names_any_case(self) -> None:
        """Engine API names are accepted in any case, as Go's JSON decoder does."""
        self.assertEqual(
            read("container", {"Image": "x", "WORKINGDIR": "/w", "Cmd": ["a"]}),
            {"Image": "x", "WorkingDir": "/w", "Cmd": ["a"]},
        )

    def test_duplicate_spellings(self) -> None:
        """The same field under two spellings is an error naming the second."""
        error = refused("container", {"image": "a", "Image": "b"})
        self.assertEqual(error.key_path, "docker.execution.container.Image")

    def test_healthcheck_durations(self) -> None:
        """Healthcheck durations accept Go duration strings and nanoseconds."""
        container = read(
            "container",
            {
                "healthcheck": {
                    "test": ["CMD", "true"],
                    "interval": "1m30s",
                    "timeout": 5,
                    "retries": 3,
                }
            },
        )
        self.assertEqual(
            container["Healthcheck"],
            {"Test": ["CMD", "true"], "Interval": 90_000_000_000, "Timeout": 5, "Retries": 3},
        )

    def test_duration_out_of_range(self) -> None:
        """A duration beyond Go's int64 nanoseconds, text or number, names its path."""
        for interval in ("2562048h", "1" * 400 + "s", 2**63, -(2**63) - 1, 1e19):
            error = refused("container", {"healthcheck": {"interval": interval}})
            self.assertEqual(error.key_path, "docker.execution.container.healthcheck.interval")
        container = read("container", {"healthcheck": {"interval": 2**63 - 1}})
        self.assertEqual(container["Healthcheck"]["Interval"], 2**63 - 1)

    def test_null_is_omitted(self) -> None:
        """A null value leaves the field out, like a Go zero value."""
        self.assertEqual(read("container", {"image": "x", "user": None}), {"Image": "x"})

    def test_unknown_keys_passed_on_and_warned(self) -> None:
        """Unknown keys are kept as written, each warned about once with its path."""
        config = loaded(container={"image": "x", "futurefield": {"a": 1}}, host={"cpuz": 1})
        self.assertEqual(config.docker.execution.container, {"Image": "x", "futurefield": {"a": 1}})
        self.assertEqual(
            [(w.code, w.key_path, w.message) for w in config.warnings],
            [
                (
                    messages.CONFIG_DOCKER_UNKNOWN_KEY,
                    key,
                    "not a Docker Engine API field this gateway knows; "
                    "passed to the engine as it is",
                )
                for key in ("docker.execution.container.futurefield", "docker.execution.host.cpuz")
            ],
        )

    def test_values_json_cannot_carry(self) -> None:
        """What YAML gives and JSON has no form for is refused, naming its path, not passed on."""
        looping: list[Any] = []
        looping.append(looping)
        container = "docker.execution.container"
        for raw, path, words in (
            ({"future": b"\x00"}, f"{container}.future", "binary data (!!binary)"),
            ({"future": {"a": [datetime.date(2024, 1, 2)]}}, f"{container}.future.a[0]", "date"),
            ({"future": {1, 2}}, f"{container}.future", "a set (!!set)"),
            ({"future": float("nan")}, f"{container}.future", "JSON has no NaN"),
            ({"future": [float("-inf")]}, f"{container}.future[0]", "JSON has no NaN or infinity"),
            ({"future": {1: "a"}}, f"{container}.future.1", "keys must be strings"),
            ({"future": looping}, f"{container}.future[0]", "contains itself"),
            ({"future": object()}, f"{container}.future", "object value"),
        ):
            error = refused("container", raw)
            self.assertEqual(error.key_path, path)
            self.assertIn(words, error.problem)
        # ``ConsoleSize`` is a known key that takes any value: the same rule.
        error = refused("host", {"consolesize": [b""]})
        self.assertEqual(error.key_path, "docker.execution.host.consolesize[0]")

    def test_passed_on_values_are_copies(self) -> None:
        """A passed-on value is JSON data of its own: tuples become lists, none is shared."""
        shared = {"a": (1, 2.5, None, True)}
        container = read("container", {"future": shared, "other": shared})
        self.assertEqual(container["future"], {"a": [1, 2.5, None, True]})
        self.assertIsNot(container["future"], shared)
        self.assertIsNot(container["future"], container["other"])
        self.assertEqual(json.loads(json.dumps(container, allow_nan=False)), container)

    def test_wrong_types(self) -> None:
        """A value of the wrong kind is an error naming its path and what it should be."""
        for raw, path, words in (
            ({"env": "A=1"}, "env", "must be a list, not a string"),
            ({"tty": "yes"}, "tty", "must be true or false"),
            ({"stoptimeout": "5"}, "stoptimeout", "must be an integer, not a string"),
            ({"labels": ["a"]}, "labels", "must be a mapping, not a list"),
            ({"labels": {"a": [1]}}, "labels.a", "must be a string, not a list"),
            ({"hostname": True}, "hostname", "must be a string, not a boolean"),
            ({"exposedports": {"22/tcp": 1}}, "exposedports.22/tcp", "must be empty"),
            ({"healthcheck": {"interval": "soon"}}, "healthcheck.interval", "soon"),
            ({"healthcheck": {"interval": [1]}}, "healthcheck.interval", "not a list"),
            ({"healthcheck": {"retries": "x"}}, "healthcheck.retries", "must be an integer"),
            ({"env": ["A", {"b": 1}]}, "env[1]", "must be a string, not a mapping"),
        ):
            with self.subTest(raw=raw):
                error = refused("container", raw)
                self.assertEqual(error.key_path, f"docker.execution.container.{path}")
                self.assertIn(words, error.problem)

    def test_scalar_strings(self) -> None:
        """Numbers in string fields and string maps become strings, as Go's YAML decoder does."""
        container = read("container", {"image": "i", "user": 1000, "labels": {"n": 1, "b": True}})
        self.assertEqual(
            container, {"Image": "i", "User": "1000", "Labels": {"n": "1", "b": "true"}}
        )

    def test_containerssh_fixtures(self) -> None:
        """ContainerSSH's own example and full 0.4 dump load without a warning about them."""
        for name in ("config.example.yaml", "config-0.4-full.yaml"):
            with open(fixture(name), encoding="utf-8") as file:
                data = yaml.safe_load(file)
            data["ssh"].pop("hostkeys", None)  # files on ContainerSSH's machine
            self.assertEqual(unknown_keys(parse_config(data)), [], name)


class HostTests(SynchronousTestCase):
    def test_fields(self) -> None:
        """HostConfig fields, nested structs and lists of structs get Engine API names."""
        config = loaded(
            host={
                "binds": ["/a:/b:ro"],
                "autoremove": True,
                "networkmode": "none",
                "privileged": False,
                "capadd": ["NET_ADMIN"],
                "capdrop": ["ALL"],
                "readonlyrootfs": True,
                "restartpolicy": {"name": "no", "maximumretrycount": 0},
                "securityopt": ["no-new-privileges"],
                "tmpfs": {"/tmp": "size=64m"},
                "ulimits": [{"name": "nofile", "soft": 1024, "hard": 2048}],
                "dns": ["1.1.1.1"],
                "dnssearch": ["example.org"],
                "extrahosts": ["h:127.0.0.1"],
                "logconfig": {"type": "json-file", "config": {"max-size": "10m"}},
                "portbindings": {"22/tcp": [{"hostip": "127.0.0.1", "hostport": "2200"}]},
                "mounts": [
                    {
                        "type": "volume",
                        "source": "v",
                        "target": "/v",
                        "readonly": True,
                        "volumeoptions": {"nocopy": True, "driverconfig": {"name": "local"}},
                    }
                ],
                "shmsize": 67108864,
                "init": True,
            }
        )
        self.assertEqual(unknown_keys(config), [])
        self.assertEqual(
            config.docker.execution.host,
            {
                "Binds": ["/a:/b:ro"],
                "AutoRemove": True,
                "NetworkMode": "none",
                "Privileged": False,
                "CapAdd": ["NET_ADMIN"],
                "CapDrop": ["ALL"],
                "ReadonlyRootfs": True,
                "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                "SecurityOpt": ["no-new-privileges"],
                "Tmpfs": {"/tmp": "size=64m"},
                "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
                "Dns": ["1.1.1.1"],
                "DnsSearch": ["example.org"],
                "ExtraHosts": ["h:127.0.0.1"],
                "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m"}},
                "PortBindings": {"22/tcp": [{"HostIp": "127.0.0.1", "HostPort": "2200"}]},
                "Mounts": [
                    {
                        "Type": "volume",
                        "Source": "v",
                        "Target": "/v",
                        "ReadOnly": True,
                        "VolumeOptions": {"NoCopy": True, "DriverConfig": {"Name": "local"}},
                    }
                ],
                "ShmSize": 67108864,
                "Init": True,
            },
        )

    def test_resources_nested_and_flat(self) -> None:
        """Resources may be nested under ``resources`` (YAML) or flat (JSON); both are held flat."""
        nested = read(
            "host", {"resources": {"memory": 1 << 28, "nanocpus": 500_000_000, "pidslimit": 100}}
        )
        flat = read("host", {"Memory": 1 << 28, "NanoCPUs": 500_000_000, "PidsLimit": 100})
        expected = {"Memory": 1 << 28, "NanoCpus": 500_000_000, "PidsLimit": 100}
        self.assertEqual(nested, expected)
        self.assertEqual(flat, expected)

    def test_resources_given_twice(self) -> None:
        """A resource given both nested and flat is an error."""
        error = refused("host", {"memory": 1, "resources": {"memory": 2}})
        self.assertEqual(error.key_path, "docker.execution.host.resources.Memory")
        error = refused("host", {"resources": {}, "Resources": {}})
        self.assertEqual(error.key_path, "docker.execution.host.Resources")

    def test_wrong_type_in_resources(self) -> None:
        error = refused("host", {"resources": {"memory": "lots"}})
        self.assertEqual(error.key_path, "docker.execution.host.resources.memory")

    def test_go_and_json_names(self) -> None:
        """Fields whose Go and JSON names differ accept both (CPUShares / CpuShares)."""
        self.assertEqual(
            read("host", {"cpushares": 512, "CpuPeriod": 100000, "DNSOptions": ["x"]}),
            {"CpuShares": 512, "CpuPeriod": 100000, "DnsOptions": ["x"]},
        )

    def test_tables_find_every_spelling(self) -> None:
        """Every field of the tables is found by its API name and its Go name, in any case."""
        for table in (CONTAINER_CONFIG, HOST_CONFIG, RESOURCES, NETWORKING_CONFIG, PLATFORM):
            for field in table.fields:
                for name in (field.name, field.go_name or field.name):
                    self.assertIs(table.find(name.upper()), field)
        for field in (*HOST_CONFIG.fields, *RESOURCES.fields):
            self.assertIs(HOST_CONFIG_FLAT.find(field.name), field)


class NetworkAndPlatformTests(SynchronousTestCase):
    def test_networking_config(self) -> None:
        """NetworkingConfig endpoint settings are converted per network."""
        self.assertEqual(
            read(
                "network",
                {
                    "endpointsconfig": {
                        "mynet": {"aliases": ["a"], "ipamconfig": {"ipv4address": "10.0.0.2"}}
                    }
                },
            ),
            {
                "EndpointsConfig": {
                    "mynet": {"Aliases": ["a"], "IPAMConfig": {"IPv4Address": "10.0.0.2"}}
                }
            },
        )

    def test_platform(self) -> None:
        """The OCI platform's names are lower case, some with dots."""
        self.assertEqual(
            read("platform", {"OS": "linux", "architecture": "arm", "osversion": "1"}),
            {"os": "linux", "architecture": "arm", "os.version": "1"},
        )

    def test_variant_needs_architecture(self) -> None:
        error = refused("platform", {"variant": "v7"})
        self.assertEqual(str(error), "docker.execution.platform: a variant needs an architecture")


class DumpTests(SynchronousTestCase):
    def test_written_as_containerssh_writes_yaml(self) -> None:
        """Dumped, they have ContainerSSH's YAML names, resources nested, Go's durations."""
        config = loaded(
            "json",
            container={"Image": "i", "WorkingDir": "/w", "Healthcheck": {"Interval": 90 * 10**9}},
            host={"Memory": 1024, "CpuShares": 2, "Binds": ["/a:/b"], "Future": 1},
            platform={"os.version": "1"},
        )
        dumped = yaml.safe_load(dump_config(config))["docker"]["execution"]
        self.assertEqual(
            dumped["container"],
            {"image": "i", "workingdir": "/w", "healthcheck": {"interval": "1m30s"}},
        )
        self.assertEqual(
            dumped["host"],
            {"binds": ["/a:/b"], "Future": 1, "resources": {"memory": 1024, "cpushares": 2}},
        )
        self.assertEqual(dumped["platform"], {"osversion": "1"})
        self.assertEqual(parse_config(decode(dump_config(config), "yaml")), config)
