"""Tests for conch_container.backend.docker.containerconfig: config to Engine API JSON."""

from __future__ import annotations

import datetime
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.docker import apischema
from conch_container.backend.docker.containerconfig import (
    ContainerConfigError,
    build_create_request,
    convert_container_config,
    convert_host_config,
    convert_networking_config,
    merge_env,
    parse_go_duration,
    platform_parameter,
)


def build(**overrides: Any) -> Any:
    arguments: dict[str, Any] = {
        "container": {"image": "guest"},
        "host": None,
        "network": None,
        "platform": None,
        "container_name": "",
        "idle_command": ["/bin/idle"],
        "labels": {"containerssh_connection_id": "c1"},
        "env": [],
    }
    arguments.update(overrides)
    return build_create_request(**arguments)


class ContainerConfigTests(SynchronousTestCase):
    def test_yaml_names(self) -> None:
        """Lower-cased Go field names become Engine API names."""
        body, unknown = convert_container_config(
            {
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
        self.assertEqual(unknown, [])
        self.assertEqual(
            body,
            {
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
        body, unknown = convert_container_config({"Image": "x", "WORKINGDIR": "/w", "Cmd": ["a"]})
        self.assertEqual(body, {"Image": "x", "WorkingDir": "/w", "Cmd": ["a"]})
        self.assertEqual(unknown, [])

    def test_duplicate_spellings(self) -> None:
        """The same field under two spellings is an error naming the second."""
        error = self.assertRaises(
            ContainerConfigError, convert_container_config, {"image": "a", "Image": "b"}
        )
        self.assertEqual(error.path, "container.Image")

    def test_healthcheck_durations(self) -> None:
        """Healthcheck durations accept Go duration strings and nanoseconds."""
        body, _ = convert_container_config(
            {
                "healthcheck": {
                    "test": ["CMD", "true"],
                    "interval": "1m30s",
                    "timeout": 5,
                    "retries": 3,
                }
            }
        )
        self.assertEqual(
            body["Healthcheck"],
            {"Test": ["CMD", "true"], "Interval": 90_000_000_000, "Timeout": 5, "Retries": 3},
        )

    def test_null_is_omitted(self) -> None:
        """A null value leaves the field out, like a Go zero value."""
        body, _ = convert_container_config({"image": "x", "user": None})
        self.assertEqual(body, {"Image": "x"})

    def test_unknown_keys_pass_through(self) -> None:
        """Unknown keys are passed on unchanged and reported with their path."""
        body, unknown = convert_container_config({"image": "x", "futurefield": {"a": 1}})
        self.assertEqual(body, {"Image": "x", "futurefield": {"a": 1}})
        self.assertEqual(unknown, ["container.futurefield"])

    def test_values_json_cannot_carry(self) -> None:
        """What YAML gives and JSON has no form for is refused, naming its path, not passed on."""
        looping: list[Any] = []
        looping.append(looping)
        for raw, path, words in (
            ({"future": b"\x00"}, "container.future", "binary data (!!binary)"),
            ({"future": {"a": [datetime.date(2024, 1, 2)]}}, "container.future.a[0]", "date"),
            ({"future": {1, 2}}, "container.future", "a set (!!set)"),
            ({"future": float("nan")}, "container.future", "JSON has no NaN"),
            ({"future": [float("-inf")]}, "container.future[0]", "JSON has no NaN or infinity"),
            ({"future": {1: "a"}}, "container.future", "key 1 is not a string"),
            ({"future": looping}, "container.future[0]", "contains itself"),
            ({"future": object()}, "container.future", "object value"),
        ):
            error = self.assertRaises(ContainerConfigError, convert_container_config, raw)
            self.assertEqual(error.path, path)
            self.assertIn(words, error.message)
        # ``ConsoleSize`` is a known key that takes any value: the same rule.
        error = self.assertRaises(ContainerConfigError, convert_host_config, {"consolesize": [b""]})
        self.assertEqual(error.path, "host.consolesize[0]")

    def test_passed_through_values_are_copies(self) -> None:
        """A passed-through value is JSON data of its own: tuples become lists, none is shared."""
        shared = {"a": (1, 2.5, None, True)}
        body, _ = convert_container_config({"future": shared, "other": shared})
        self.assertEqual(body["future"], {"a": [1, 2.5, None, True]})
        self.assertIsNot(body["future"], shared)
        self.assertIsNot(body["future"], body["other"])
        self.assertEqual(json.loads(json.dumps(body, allow_nan=False)), body)

    def test_wrong_types(self) -> None:
        """A value of the wrong kind is an error naming its path."""
        for raw, path in (
            ({"env": "A=1"}, "container.env"),
            ({"tty": "yes"}, "container.tty"),
            ({"stoptimeout": "5"}, "container.stoptimeout"),
            ({"labels": ["a"]}, "container.labels"),
            ({"hostname": True}, "container.hostname"),
            ({"exposedports": {"22/tcp": 1}}, "container.exposedports.22/tcp"),
            ({"healthcheck": {"interval": "soon"}}, "container.healthcheck.interval"),
            ({"env": ["A", {"b": 1}]}, "container.env[1]"),
        ):
            with self.subTest(raw=raw):
                error = self.assertRaises(ContainerConfigError, convert_container_config, raw)
                self.assertEqual(error.path, path)

    def test_scalar_strings(self) -> None:
        """Numbers in string fields and string maps become strings, as Go's YAML decoder does."""
        body, _ = convert_container_config({"user": 1000, "labels": {"n": 1, "b": True}})
        self.assertEqual(body, {"User": "1000", "Labels": {"n": "1", "b": "true"}})


class HostConfigTests(SynchronousTestCase):
    def test_fields(self) -> None:
        """HostConfig fields, nested structs and lists of structs get Engine API names."""
        body, unknown = convert_host_config(
            {
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
        self.assertEqual(unknown, [])
        self.assertEqual(
            body,
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
        """Resources may be nested under ``resources`` (YAML) or flat (JSON); both end flat."""
        nested, _ = convert_host_config(
            {"resources": {"memory": 1 << 28, "nanocpus": 500_000_000, "pidslimit": 100}}
        )
        flat, _ = convert_host_config(
            {"Memory": 1 << 28, "NanoCPUs": 500_000_000, "PidsLimit": 100}
        )
        expected = {"Memory": 1 << 28, "NanoCpus": 500_000_000, "PidsLimit": 100}
        self.assertEqual(nested, expected)
        self.assertEqual(flat, expected)

    def test_resources_given_twice(self) -> None:
        """A resource given both nested and flat is an error."""
        self.assertRaises(
            ContainerConfigError,
            convert_host_config,
            {"memory": 1, "resources": {"memory": 2}},
        )

    def test_go_and_json_names(self) -> None:
        """Fields whose Go and JSON names differ accept both (CPUShares / CpuShares)."""
        body, unknown = convert_host_config(
            {"cpushares": 512, "CpuPeriod": 100000, "DNSOptions": ["x"]}
        )
        self.assertEqual(body, {"CpuShares": 512, "CpuPeriod": 100000, "DnsOptions": ["x"]})
        self.assertEqual(unknown, [])

    def test_every_table_entry_round_trips(self) -> None:
        """Every API name in the tables maps to itself (so JSON configs pass unchanged)."""
        for table in (
            apischema.CONTAINER_CONFIG,
            apischema.HOST_CONFIG,
            apischema.RESOURCES,
            apischema.NETWORKING_CONFIG,
        ):
            for field in table.values():
                self.assertIs(table[field.api_name.lower()], field)


class NetworkAndPlatformTests(SynchronousTestCase):
    def test_networking_config(self) -> None:
        """NetworkingConfig endpoint settings are converted per network."""
        body, _ = convert_networking_config(
            {
                "endpointsconfig": {
                    "mynet": {"aliases": ["a"], "ipamconfig": {"ipv4address": "10.0.0.2"}}
                }
            }
        )
        self.assertEqual(
            body,
            {
                "EndpointsConfig": {
                    "mynet": {"Aliases": ["a"], "IPAMConfig": {"IPv4Address": "10.0.0.2"}}
                }
            },
        )

    def test_platform(self) -> None:
        """The platform becomes os/arch[/variant], with linux as the default OS."""
        self.assertIsNone(platform_parameter(None))
        self.assertEqual(
            platform_parameter({"os": "linux", "architecture": "arm64"}), "linux/arm64"
        )
        self.assertEqual(
            platform_parameter({"architecture": "arm", "variant": "v7"}), "linux/arm/v7"
        )


class CreateRequestTests(SynchronousTestCase):
    def test_cmd_replaced(self) -> None:
        """Cmd is always the idle command; the image entrypoint is kept."""
        request = build(container={"image": "guest", "cmd": ["/bin/other"]})
        self.assertEqual(request.body["Cmd"], ["/bin/idle"])
        self.assertNotIn("Entrypoint", request.body)
        self.assertEqual(request.image, "guest")

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
        request = build(host={"autoremove": True}, network={"endpointsconfig": {"n": {}}})
        self.assertEqual(request.body["HostConfig"], {"AutoRemove": True})
        self.assertEqual(request.body["NetworkingConfig"], {"EndpointsConfig": {"n": {}}})
        self.assertEqual(build().body.get("HostConfig"), None)

    def test_name_and_platform(self) -> None:
        """containername and platform become query parameters."""
        request = build(container_name="fixed", platform={"architecture": "amd64"})
        self.assertEqual(request.name, "fixed")
        self.assertEqual(request.platform, "linux/amd64")
        self.assertIsNone(build().name)

    def test_image_required(self) -> None:
        """A container without an image is an error."""
        error = self.assertRaises(ContainerConfigError, build, container={"user": "x"})
        self.assertEqual(error.path, "docker.execution.container.image")

    def test_unknown_keys_reported(self) -> None:
        """Unknown keys from every struct are reported together."""
        request = build(container={"image": "g", "x1": 1}, host={"x2": 2}, network={"x3": 3})
        self.assertEqual(
            request.unknown_keys,
            (
                "docker.execution.container.x1",
                "docker.execution.host.x2",
                "docker.execution.network.x3",
            ),
        )


class DurationAndEnvTests(SynchronousTestCase):
    def test_go_durations(self) -> None:
        """Go duration strings are parsed into nanoseconds."""
        for text, ns in (
            ("0", 0),
            ("1s", 10**9),
            ("1.5s", 1_500_000_000),
            ("1h2m3s", 3_723_000_000_000),
            ("100ms", 100_000_000),
            ("-20us", -20_000),
            ("3ns", 3),
        ):
            self.assertEqual(parse_go_duration(text), ns)
        for bad in ("", "5", "1d", "s", "1.2.3s", " 1s", "\u0661s"):
            self.assertRaises(ValueError, parse_go_duration, bad)

    def test_go_duration_range(self) -> None:
        """Go's int64 nanoseconds bound a duration, however long its text; no float overflows."""
        self.assertEqual(parse_go_duration("9223372036854775807ns"), 2**63 - 1)
        self.assertEqual(parse_go_duration("-9223372036854775808ns"), -(2**63))
        self.assertEqual(parse_go_duration("2562047h"), 2562047 * 3600 * 10**9)
        for bad in ("9223372036854775808ns", "2562048h", "1" * 400 + "s", "-2562048h"):
            error = self.assertRaises(ValueError, parse_go_duration, bad)
            self.assertIn("out of range", str(error))

    def test_duration_setting_out_of_range(self) -> None:
        """A duration setting beyond int64 nanoseconds, text or number, names its path."""
        for interval in ("2562048h", 2**63, -(2**63) - 1, 1e19):
            error = self.assertRaises(
                ContainerConfigError,
                convert_container_config,
                {"healthcheck": {"interval": interval}},
            )
            self.assertEqual(error.path, "container.healthcheck.interval")
        body, _ = convert_container_config({"healthcheck": {"interval": 2**63 - 1}})
        self.assertEqual(body["Healthcheck"]["Interval"], 2**63 - 1)

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
