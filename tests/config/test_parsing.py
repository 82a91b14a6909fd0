"""Strict parsing: unknown keys, value types and value checks, with exact messages."""

from __future__ import annotations

import textwrap

from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.codes import Level
from conch_container.config import AppConfig, ConfigError, parse_config
from conch_container.config.loader import decode
from conch_container.config.schema import SourceFormat


def parse_yaml(text: str) -> AppConfig:
    return parse_config(decode(textwrap.dedent(text), "yaml"))


def parse_json(text: str) -> AppConfig:
    return parse_config(decode(text, "json"), source_format="json")


class ParsingCase(SynchronousTestCase):
    def assertProblem(
        self, data: object, expected: str, source_format: SourceFormat = "yaml"
    ) -> ConfigError:
        """Parsing ``data`` fails with exactly the message ``expected``."""
        with self.assertRaises(ConfigError) as raised:
            parse_config(data, source_format=source_format)
        self.assertEqual(str(raised.exception), expected)
        return raised.exception


class UnknownKeyTests(ParsingCase):
    def test_root(self) -> None:
        """An unknown top-level key is an error naming it."""
        error = self.assertProblem(
            {"backnd": "docker"}, 'backnd: unknown key (did you mean "backend"?)'
        )
        self.assertEqual(error.key_path, "backnd")
        self.assertEqual(error.problem, 'unknown key (did you mean "backend"?)')

    def test_root_without_suggestion(self) -> None:
        """Without a close match the message is just "unknown key"."""
        self.assertProblem({"frobnicate": 1}, "frobnicate: unknown key")

    def test_removed_root_keys(self) -> None:
        """Keys ContainerSSH removed come with a hint."""
        self.assertProblem(
            {"listen": "0.0.0.0:2222"},
            "listen: unknown key (moved to ssh.listen in ContainerSSH 0.4)",
        )
        self.assertProblem(
            {"dockerrun": {}},
            "dockerrun: unknown key (the dockerrun backend was removed in ContainerSSH 0.5; "
            "use docker)",
        )

    def test_second_level(self) -> None:
        """Unknown keys inside a section name the full path."""
        self.assertProblem(
            {"ssh": {"lissen": "x"}}, 'ssh.lissen: unknown key (did you mean "listen"?)'
        )

    def test_third_level(self) -> None:
        """A typo three levels deep, inside docker.execution."""
        self.assertProblem(
            {"docker": {"execution": {"contianer": {}}}},
            'docker.execution.contianer: unknown key (did you mean "container"?)',
        )

    def test_fourth_level(self) -> None:
        """Inside a webhook block of an auth method."""
        self.assertProblem(
            {"auth": {"password": {"webhook": {"timeoutt": "2s"}}}},
            'auth.password.webhook.timeoutt: unknown key (did you mean "timeout"?)',
        )
        self.assertProblem(
            {"audit": {"s3": {"metadata": {"user": True}}}}, "audit.s3.metadata.user: unknown key"
        )

    def test_docker_structs_tolerate_unknown_fields(self) -> None:
        """Fields the Engine API tables do not know are kept as written, with a warning."""
        config = parse_config(
            {"docker": {"execution": {"container": {"image": "x", "futurefield": 1}}}}
        )
        self.assertEqual(config.docker.execution.container, {"Image": "x", "futurefield": 1})
        self.assertEqual(
            [(w.code, w.key_path) for w in config.warnings],
            [(messages.CONFIG_DOCKER_UNKNOWN_KEY, "docker.execution.container.futurefield")],
        )

    def test_kubernetes_objects_refuse_unknown_fields(self) -> None:
        """Kubernetes objects are decoded strictly, as ContainerSSH decodes them."""
        self.assertProblem(
            {"kubernetes": {"pod": {"spec": {"containers": [{"name": "a", "imagee": "b"}]}}}},
            'kubernetes.pod.spec.containers[0].imagee: unknown key (did you mean "image"?)',
        )

    def test_yaml_keys_are_case_sensitive(self) -> None:
        """In YAML a key must be spelled exactly (as Go's YAML decoder requires)."""
        self.assertProblem(
            {"ssh": {"Listen": "x"}}, 'ssh.Listen: unknown key (did you mean "listen"?)'
        )

    def test_json_keys_are_case_insensitive(self) -> None:
        """In JSON keys match case-insensitively, as Go's encoding/json does."""
        config = parse_json('{"SSH": {"Listen": "127.0.0.1:22", "SERVERVERSION": "SSH-2.0-x"}}')
        self.assertEqual(config.ssh.listen, "127.0.0.1:22")
        self.assertEqual(config.ssh.server_version, "SSH-2.0-x")

    def test_non_string_key(self) -> None:
        """Keys must be strings."""
        self.assertProblem({"ssh": {1: "x"}}, "ssh.1: keys must be strings")

    def test_document_not_a_mapping(self) -> None:
        """The document must be a mapping."""
        self.assertProblem([1, 2], "the configuration must be a mapping of sections")


class TypeTests(ParsingCase):
    def test_section_not_a_mapping(self) -> None:
        """A section given as a list is an error."""
        self.assertProblem({"ssh": []}, "ssh: must be a mapping, not a list")

    def test_wrong_scalar_types(self) -> None:
        """Each kind names what it expected and what it got."""
        self.assertProblem(
            {"ssh": {"clientAliveCountMax": "3"}},
            "ssh.clientAliveCountMax: must be an integer, not a string",
        )
        self.assertProblem(
            {"metrics": {"enable": "maybe"}}, "metrics.enable: must be true or false, not a string"
        )
        self.assertProblem({"ssh": {"banner": ["a"]}}, "ssh.banner: must be a string, not a list")
        self.assertProblem(
            {"docker": {"execution": {"idleCommand": "sleep"}}},
            "docker.execution.idleCommand: must be a list, not a string",
        )
        self.assertProblem(
            {"docker": {"execution": {"subsystems": ["sftp"]}}},
            "docker.execution.subsystems: must be a mapping, not a list",
        )
        self.assertProblem(
            {"docker": {"execution": {"host": "x"}}},
            "docker.execution.host: must be a mapping, not a string",
        )

    def test_list_items_are_indexed(self) -> None:
        """Errors in list items name the index."""
        self.assertProblem(
            {"ssh": {"ciphers": ["aes128-ctr", {"x": 1}]}},
            "ssh.ciphers[1]: must be a string, not a mapping",
        )
        self.assertProblem(
            {"docker": {"execution": {"shellCommand": ["/bin/sh", None]}}},
            "docker.execution.shellCommand[1]: must not be null",
        )

    def test_yaml_numbers_in_string_fields(self) -> None:
        """YAML numbers are accepted where strings are expected, as yaml.v3 does."""
        config = parse_yaml(
            """
            auth:
              password:
                webhook:
                  tlsVersion: 1.2
            docker:
              execution:
                idleCommand: [sleep, 100]
            """
        )
        self.assertEqual(config.auth.password.webhook.tls_version, "1.2")
        self.assertEqual(config.docker.execution.idle_command, ("sleep", "100"))

    def test_json_numbers_in_string_fields(self) -> None:
        """JSON is strict: a number is not a string."""
        self.assertProblem(
            {"ssh": {"banner": 5}}, "ssh.banner: must be a string, not a number", "json"
        )

    def test_yaml_1_2_scalars(self) -> None:
        """Plain scalars follow YAML 1.2: on/yes/dates are strings in string fields."""
        config = parse_yaml(
            """
            ssh:
              banner: 2024-01-01
            log:
              syslog:
                tag: on
            """
        )
        self.assertEqual(config.ssh.banner, "2024-01-01")
        self.assertEqual(config.log.syslog.tag, "on")

    def test_yaml_bool_words(self) -> None:
        """Boolean fields also take yes/no/on/off, as yaml.v3 does for typed booleans."""
        config = parse_yaml("metrics: {enable: on}\nlog: {syslog: {pid: yes}}\n")
        self.assertTrue(config.metrics.enable)
        self.assertTrue(config.log.syslog.pid)
        config = parse_yaml("metrics: {enable: Off}\n")
        self.assertFalse(config.metrics.enable)

    def test_duplicate_keys(self) -> None:
        """A key given twice in one mapping is an error naming the line."""
        with self.assertRaises(ConfigError) as raised:
            decode("ssh:\n  listen: a\n  listen: b\n", "yaml")
        self.assertEqual(
            str(raised.exception),
            "invalid YAML: found duplicate key 'listen' (line 3, column 3)",
        )

    def test_syntax_error(self) -> None:
        """A YAML syntax error is a ConfigError with its position."""
        with self.assertRaises(ConfigError) as raised:
            decode("ssh: [unclosed\n", "yaml")
        self.assertEqual(raised.exception.key_path, "")
        self.assertIn("invalid YAML", str(raised.exception))
        self.assertIn("line 2", str(raised.exception))

    def test_json_syntax_error(self) -> None:
        """A JSON syntax error is a ConfigError with its position."""
        with self.assertRaises(ConfigError) as raised:
            decode('{"ssh": }', "json")
        self.assertEqual(str(raised.exception), "invalid JSON: Expecting value (line 1, column 9)")


class ValueTests(ParsingCase):
    def test_listen(self) -> None:
        """Listen addresses must be host:port."""
        for value in ("0.0.0.0:2222", ":2222", "[::]:22", "localhost:0"):
            self.assertEqual(parse_config({"ssh": {"listen": value}}).ssh.listen, value)
        for value in ("2222", "0.0.0.0", "host:port", "::1:22", "a:70000"):
            self.assertProblem(
                {"ssh": {"listen": value}},
                "ssh.listen: must be host:port, such as 0.0.0.0:2222 or [::]:2222",
            )

    def test_server_version(self) -> None:
        """serverVersion must be an SSH-2.0 identification string."""
        config = parse_config({"ssh": {"serverVersion": "SSH-2.0-Gateway_1.0 some comment"}})
        self.assertEqual(config.ssh.server_version, "SSH-2.0-Gateway_1.0 some comment")
        for value in ("OpenSSH_9", "SSH-2.0-with-dash", "SSH-1.99-x", "SSH-2.0-x\r\n"):
            error = self.assertRaises(ConfigError, parse_config, {"ssh": {"serverVersion": value}})
            self.assertEqual(error.key_path, "ssh.serverVersion")
        error = self.assertRaises(
            ConfigError, parse_config, {"ssh": {"serverVersion": "SSH-2.0-" + "x" * 250}}
        )
        self.assertEqual(error.problem, "must be at most 253 characters")

    def test_keepalive_interval(self) -> None:
        """clientAliveInterval is 0 or at least one second."""
        self.assertProblem(
            {"ssh": {"clientAliveInterval": "500ms"}},
            "ssh.clientAliveInterval: must be 0 or at least 1s",
        )
        config = parse_config({"ssh": {"clientAliveInterval": "1m30s"}})
        self.assertEqual(config.ssh.client_alive_interval, 90.0)

    def test_durations(self) -> None:
        """Durations take Go strings or integer nanoseconds in YAML."""
        config = parse_yaml("ssh: {clientAliveInterval: 2000000000, loginGraceTime: 1h}\n")
        self.assertEqual(config.ssh.client_alive_interval, 2.0)
        self.assertEqual(config.ssh.login_grace_time, 3600.0)
        self.assertProblem(
            {"ssh": {"loginGraceTime": "1x"}},
            "ssh.loginGraceTime: unknown unit 'x' in duration '1x'",
        )
        self.assertProblem(
            {"ssh": {"loginGraceTime": "-5s"}}, "ssh.loginGraceTime: must not be negative"
        )
        self.assertProblem(
            {"ssh": {"loginGraceTime": 1.5}},
            "ssh.loginGraceTime: must be a whole number of nanoseconds",
        )
        self.assertProblem(
            {"ssh": {"loginGraceTime": True}},
            "ssh.loginGraceTime: must be a duration such as 60s or 1m30s, not a boolean",
        )

    def test_json_durations(self) -> None:
        """JSON durations are integer nanoseconds, except Docker timeouts, which take both."""
        config = parse_json('{"ssh": {"clientAliveInterval": 5000000000}}')
        self.assertEqual(config.ssh.client_alive_interval, 5.0)
        self.assertProblem(
            {"ssh": {"clientAliveInterval": "5s"}},
            "ssh.clientAliveInterval: must be a duration in integer nanoseconds in JSON, "
            "not a string",
            "json",
        )
        config = parse_json(
            '{"docker": {"timeouts": {"containerStart": "2m", "http": 5000000000}}}'
        )
        self.assertEqual(config.docker.timeouts.container_start, 120.0)
        self.assertEqual(config.docker.timeouts.http, 5.0)
        config = parse_yaml("docker: {timeouts: {signal: 3000000000}}\n")
        self.assertEqual(config.docker.timeouts.signal, 3.0)

    def test_http_timeout_minimum(self) -> None:
        """HTTP timeouts are at least 100ms."""
        self.assertProblem(
            {"auth": {"password": {"webhook": {"timeout": "50ms"}}}},
            "auth.password.webhook.timeout: must be at least 100ms",
        )
        self.assertProblem(
            {"auth": {"authz": {"webhook": {"authTimeout": "10ms"}}}},
            "auth.authz.webhook.authTimeout: must be at least 100ms",
        )

    def test_choices(self) -> None:
        """Fields with a fixed set of values name the allowed ones."""
        self.assertProblem(
            {"docker": {"execution": {"mode": "container"}}},
            'docker.execution.mode: must be one of "connection", "session"',
        )
        self.assertProblem(
            {"auth": {"password": {"method": "ldap"}}},
            'auth.password.method: must be one of "", "webhook", "kerberos", "static"',
        )
        self.assertProblem(
            {"backend": "Docker Engine"},
            "backend: must be a backend name: docker, kubernetes, sshproxy or a plugin's name",
        )
        self.assertProblem(
            {"auth": {"password": {"webhook": {"tlsVersion": 1.1}}}},
            'auth.password.webhook.tlsVersion: must be one of "1.2", "1.3"',
        )
        self.assertProblem(
            {"docker": {"execution": {"imagePullPolicy": "always"}}},
            'docker.execution.imagePullPolicy: must be one of "Always", "IfNotPresent", "Never"',
        )
        self.assertProblem(
            {"security": {"env": {"mode": "allow"}}},
            'security.env.mode: must be one of "", "enable", "filter", "disable"',
        )

    def test_ranges(self) -> None:
        """Integer ranges are enforced."""
        self.assertProblem(
            {"ssh": {"clientAliveCountMax": -1}}, "ssh.clientAliveCountMax: must be at least 1"
        )
        self.assertProblem({"ssh": {"maxAuthTries": -3}}, "ssh.maxAuthTries: must be at least 1")
        self.assertProblem(
            {"audit": {"s3": {"parallelUploads": -1}}},
            "audit.s3.parallelUploads: must be at least 1",
        )
        self.assertProblem(
            {"audit": {"s3": {"uploadPartSize": 1024}}},
            "audit.s3.uploadPartSize: must be at least 5242880 (5 MiB)",
        )
        self.assertProblem(
            {"security": {"maxSessions": -2}}, "security.maxSessions: must be at least -1"
        )
        self.assertProblem(
            {"sshproxy": {"port": 70000}}, "sshproxy.port: must be between 1 and 65535"
        )

    def test_log_level(self) -> None:
        """Log levels are names or numbers 0-7."""
        self.assertEqual(parse_config({"log": {"level": "debug"}}).log.level, Level.DEBUG)
        self.assertEqual(parse_config({"log": {"level": 6}}).log.level, Level.INFO)
        self.assertEqual(parse_config({"log": {"level": "3"}}).log.level, Level.ERROR)
        self.assertProblem(
            {"log": {"level": "verbose"}},
            "log.level: must be a log level (debug, info, notice, warning, error, crit, alert, "
            "emerg) or a number 0-7",
        )

    def test_ssh_algorithm_lists(self) -> None:
        """Algorithm lists may not be empty; unknown names are kept for the SSH layer."""
        for key in ("ciphers", "kex", "macs"):
            self.assertProblem({"ssh": {key: []}}, f"ssh.{key}: must not be empty")
        config = parse_config({"ssh": {"ciphers": ["aes128-ctr", "future-cipher@example.com"]}})
        self.assertEqual(config.ssh.ciphers, ("aes128-ctr", "future-cipher@example.com"))

    def test_tls_lists(self) -> None:
        """TLS lists take a list or a colon-separated string, in any accepted spelling."""
        config = parse_config(
            {
                "configserver": {
                    "cipher": "TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES256-GCM-SHA384:"
                    "TLS_ECDHE_ECDSA_AES_128_GCM_SHA256",
                    "curves": ["X25519", "prime256v1"],
                }
            }
        )
        self.assertEqual(
            config.configserver.cipher,
            (
                "TLS_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            ),
        )
        self.assertEqual(config.configserver.curves, ("x25519", "secp256r1"))
        self.assertProblem(
            {"configserver": {"cipher": ["RC4-MD5"]}},
            "configserver.cipher[0]: unsupported TLS cipher suite 'RC4-MD5'",
        )
        self.assertProblem(
            {"health": {"curves": "x25519:brainpool"}},
            "health.curves[1]: unsupported TLS curve 'brainpool'",
        )

    def test_zero_means_default(self) -> None:
        """As in ContainerSSH, an empty or zero scalar means the default."""
        config = parse_config(
            {
                "ssh": {"listen": "", "clientAliveCountMax": 0},
                "security": {"maxSessions": 0},
                "docker": {"timeouts": {"http": 0}, "execution": {"mode": ""}},
                "log": {"level": ""},
            }
        )
        self.assertEqual(config.log.level, Level.NOTICE)
        self.assertEqual(config.ssh.listen, "0.0.0.0:2222")
        self.assertEqual(config.ssh.client_alive_count_max, 3)
        self.assertEqual(config.security.max_sessions, -1)
        self.assertEqual(config.docker.timeouts.http, 15.0)
        self.assertEqual(config.docker.execution.mode, "connection")

    def test_false_overrides_true_default(self) -> None:
        """Unlike ContainerSSH, false switches off a setting whose default is true."""
        config = parse_config({"auth": {"gssapi": {"kerberos": {"enforceUsername": False}}}})
        self.assertFalse(config.auth.gssapi.kerberos.enforce_username)

    def test_empty_collections_are_kept(self) -> None:
        """An explicitly empty list or map is not replaced by the default."""
        config = parse_config({"docker": {"execution": {"subsystems": {}, "idleCommand": []}}})
        self.assertEqual(config.docker.execution.subsystems, {})
        self.assertEqual(config.docker.execution.idle_command, ())


class StructTests(ParsingCase):
    def test_container_keeps_default_image(self) -> None:
        """Giving some container fields keeps the default image, as Go's decoding does."""
        config = parse_config({"docker": {"execution": {"container": {"user": "nobody"}}}})
        self.assertEqual(
            config.docker.execution.container,
            {"Image": "containerssh/containerssh-guest-image", "User": "nobody"},
        )

    def test_container_image_any_case(self) -> None:
        """Image in any case replaces the default image instead of adding to it."""
        for text in ('{"Image": "busybox"}', '{"IMAGE": "busybox"}', '{"image": "busybox"}'):
            config = parse_json(f'{{"docker": {{"execution": {{"container": {text}}}}}}}')
            self.assertEqual(config.docker.execution.container, {"Image": "busybox"})

    def test_host_config_held_as_engine_json(self) -> None:
        """HostConfig and friends are held as the Engine API takes them, resources flat."""
        host = {"binds": ["/a:/b"], "resources": {"memory": 1024}, "autoremove": True}
        config = parse_config({"docker": {"execution": {"host": host, "network": None}}})
        self.assertEqual(
            config.docker.execution.host, {"Binds": ["/a:/b"], "Memory": 1024, "AutoRemove": True}
        )
        self.assertIsNone(config.docker.execution.network)

    def test_wrong_type_deep_in_docker_structure(self) -> None:
        """A wrong type deep in a Docker structure is an error naming its key path."""
        self.assertProblem(
            {"docker": {"execution": {"container": {"healthcheck": {"interval": [1]}}}}},
            "docker.execution.container.healthcheck.interval: must be a duration such as 30s "
            "or 1m30s, not a list",
        )
        self.assertProblem(
            {"docker": {"execution": {"host": {"resources": {"memory": "lots"}}}}},
            "docker.execution.host.resources.memory: must be an integer, not a string",
        )

    def test_wrong_type_deep_in_pod_spec(self) -> None:
        """A wrong type deep in the pod spec is an error naming its key path."""
        spec = {"containers": [{"name": "a", "ports": [{"containerPort": "x"}]}]}
        self.assertProblem(
            {"kubernetes": {"pod": {"spec": spec}}},
            "kubernetes.pod.spec.containers[0].ports[0].containerPort: "
            "must be an integer, not a string",
        )

    def test_pod_metadata_overlay(self) -> None:
        """Pod metadata keeps generateName when only the namespace is given."""
        config = parse_config({"kubernetes": {"pod": {"metadata": {"namespace": "users"}}}})
        self.assertEqual(
            config.kubernetes.pod.metadata, {"namespace": "users", "generateName": "containerssh-"}
        )
