"""The Kubernetes manifests in docs/kubernetes/ are what Kubernetes and the gateway accept.

Each document is read into the official client's model for its kind. The
models refuse unknown fields, and a round trip through the model must give
the document back unchanged, so a misspelt or snake_case field name, or a
value of the wrong type, fails here rather than at ``kubectl apply``. The
gateway configuration in the ConfigMap is read by the gateway's own loader.
"""

from __future__ import annotations

import copy
import glob
import os
from typing import Any

import kubernetes.client
import pydantic
import yaml
from twisted.trial.unittest import SynchronousTestCase

from conch_container.config import (
    AppConfig,
    ConfigError,
    load_config,
    parse_config,
    validate_config,
)
from conch_container.config.yamlio import load_yaml
from tests.config.material import ed25519_pem, write

MANIFESTS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "docs",
    "kubernetes",
)
#: Where Kubernetes mounts a ServiceAccount's token and CA in every pod.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount/"


class ManifestError(Exception):
    """A manifest document Kubernetes would not take as written."""


def model_class(document: dict[str, Any]) -> type[pydantic.BaseModel]:
    """The client's model for a document: ``apps/v1`` ``Deployment`` is ``V1Deployment``."""
    version = str(document["apiVersion"]).rpartition("/")[2]
    name = version.capitalize() + str(document["kind"])
    cls = getattr(kubernetes.client, name, None)
    if cls is None:
        raise ManifestError(f"no model {name} for {document['apiVersion']} {document['kind']}")
    return cls  # type: ignore[no-any-return]


def load_strictly(document: dict[str, Any]) -> pydantic.BaseModel:
    """The document as its model; every field name known and spelt as the API spells it.

    :raises ManifestError: for an unknown field, a value of the wrong type,
        or a field given under another spelling than the API's.
    """
    cls = model_class(document)
    try:
        model = cls.model_validate(document)
    except pydantic.ValidationError as error:
        raise ManifestError(str(error)) from None
    back = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if back != document:
        raise ManifestError(f"{cls.__name__} does not read back as written: {back!r}")
    return model


def documents() -> dict[str, list[dict[str, Any]]]:
    """Every manifest file's documents, by file name."""
    found = {}
    for path in sorted(glob.glob(os.path.join(MANIFESTS, "*.yaml"))):
        with open(path, encoding="utf-8") as file:
            found[os.path.basename(path)] = [d for d in yaml.safe_load_all(file) if d is not None]
    return found


def by_kind(kind: str) -> list[dict[str, Any]]:
    """Every document of ``kind`` across the manifests."""
    return [d for docs in documents().values() for d in docs if d["kind"] == kind]


def one(kind: str) -> dict[str, Any]:
    [document] = by_kind(kind)
    return document


def gateway_container() -> dict[str, Any]:
    [container] = one("Deployment")["spec"]["template"]["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def gateway_config_text() -> str:
    return str(one("ConfigMap")["data"]["config.yaml"])


def service_account_files(directory: str) -> str:
    """``directory`` with the CA and token Kubernetes mounts for a ServiceAccount, and a slash."""
    write(directory, "ca.crt", "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    write(directory, "token", "token")
    return directory + os.sep


def materialise(directory: str) -> str:
    """The configuration written out in ``directory``, with the files Kubernetes would mount."""
    accounts = service_account_files(os.path.join(directory, "serviceaccount"))
    hostkeys = os.path.join(directory, "hostkeys") + os.sep
    write(hostkeys, "ssh_host_ed25519_key", ed25519_pem(), mode=0o600)
    text = gateway_config_text().replace(SERVICE_ACCOUNT_DIR, accounts)
    text = text.replace("/etc/containerssh/hostkeys/", hostkeys)
    return write(directory, "config.yaml", text)


def gateway_config(case: SynchronousTestCase) -> AppConfig:
    """The ConfigMap's configuration as the gateway parses it (not yet validated)."""
    with open(materialise(os.path.abspath(case.mktemp())), encoding="utf-8") as file:
        return parse_config(load_yaml(file.read()))


class StrictLoadingTests(SynchronousTestCase):
    """Every document is a valid object of its kind, and the check catches mistakes."""

    def test_every_document_loads(self) -> None:
        """Each document of each file reads into its model and back unchanged."""
        found = documents()
        self.assertEqual(
            sorted(found),
            [
                "configmap.yaml",
                "deployment.yaml",
                "namespaces.yaml",
                "poddisruptionbudget.yaml",
                "rbac.yaml",
                "secret-hostkeys.yaml",
                "service.yaml",
                "serviceaccount.yaml",
            ],
        )
        for name, docs in found.items():
            for document in docs:
                with self.subTest(file=name, kind=document["kind"]):
                    load_strictly(document)

    def test_misspelt_field_refused(self) -> None:
        """A typo in a field name, however deep, fails the check."""
        deployment = copy.deepcopy(one("Deployment"))
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        container["readinesProbe"] = container.pop("readinessProbe")
        with self.assertRaises(ManifestError) as raised:
            load_strictly(deployment)
        self.assertIn("readinesProbe", str(raised.exception))

    def test_snake_case_field_refused(self) -> None:
        """The client's Python spelling of a field is not the API's, and fails the check."""
        deployment = copy.deepcopy(one("Deployment"))
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        container["image_pull_policy"] = container.pop("imagePullPolicy")
        self.assertRaises(ManifestError, load_strictly, deployment)

    def test_wrong_type_refused(self) -> None:
        """A port given as a word where a number is needed fails the check."""
        deployment = copy.deepcopy(one("Deployment"))
        deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "ssh"
        self.assertRaises(ManifestError, load_strictly, deployment)


class RBACTests(SynchronousTestCase):
    """The gateway may manage pods in the users' namespace, and nothing more."""

    def test_role_rules(self) -> None:
        """Pods: create/get/list/watch/delete; pods/exec and pods/attach: create and get."""
        role = one("Role")
        granted = {
            (group, resource, verb)
            for rule in role["rules"]
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }
        expected = {("", "pods", v) for v in ("create", "get", "list", "watch", "delete")} | {
            ("", sub, v) for sub in ("pods/exec", "pods/attach") for v in ("create", "get")
        }
        self.assertEqual(granted, expected)
        self.assertEqual(by_kind("ClusterRole"), [])
        self.assertEqual(by_kind("ClusterRoleBinding"), [])

    def test_binding(self) -> None:
        """The RoleBinding gives that Role, in the users' namespace, to the gateway's account."""
        role, binding, account = one("Role"), one("RoleBinding"), one("ServiceAccount")
        users = gateway_config(self).kubernetes.pod.metadata["namespace"]
        self.assertEqual(role["metadata"]["namespace"], users)
        self.assertEqual(binding["metadata"]["namespace"], users)
        self.assertEqual(binding["roleRef"]["name"], role["metadata"]["name"])
        self.assertEqual(
            binding["subjects"],
            [
                {
                    "kind": "ServiceAccount",
                    "name": account["metadata"]["name"],
                    "namespace": account["metadata"]["namespace"],
                }
            ],
        )
        pod_spec = one("Deployment")["spec"]["template"]["spec"]
        self.assertEqual(pod_spec["serviceAccountName"], account["metadata"]["name"])
        self.assertNotEqual(users, account["metadata"]["namespace"])


class DeploymentTests(SynchronousTestCase):
    """The Deployment matches the configuration it runs."""

    def test_ports_match_configuration(self) -> None:
        """The named ports are the ones the configuration listens on."""
        config = gateway_config(self)
        ports = {p["name"]: p["containerPort"] for p in gateway_container()["ports"]}
        self.assertEqual(
            ports,
            {
                "ssh": int(config.ssh.listen.rpartition(":")[2]),
                "metrics": int(config.metrics.listen.rpartition(":")[2]),
                "health": int(config.health.listen.rpartition(":")[2]),
            },
        )
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            self.assertEqual(gateway_container()[probe]["httpGet"], {"path": "/", "port": "health"})

    def test_hardened(self) -> None:
        """Not root, no privilege escalation, no capabilities, a read-only root file system."""
        pod_spec = one("Deployment")["spec"]["template"]["spec"]
        self.assertTrue(pod_spec["securityContext"]["runAsNonRoot"])
        context = gateway_container()["securityContext"]
        self.assertEqual(
            context,
            {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
        )
        self.assertIn("limits", gateway_container()["resources"])

    def test_mounts_match_configuration(self) -> None:
        """The config file, host key and state directory are mounted where they are looked for."""
        container = gateway_container()
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        args = container["args"]
        self.assertEqual(args[args.index("-c") + 1], mounts["config"])
        self.assertEqual(args[args.index("--state-dir") + 1], mounts["state"])
        config = load_yaml(gateway_config_text())
        [hostkey] = config["ssh"]["hostkeys"]
        self.assertEqual(os.path.dirname(hostkey), mounts["hostkeys"])
        self.assertEqual(list(one("Secret")["stringData"]), [os.path.basename(hostkey)])

    def test_disruption_budget_and_service_select_the_gateway(self) -> None:
        """The Services and the PodDisruptionBudget select the Deployment's pods."""
        labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
        for service in by_kind("Service"):
            self.assertEqual(service["spec"]["selector"], labels)
        self.assertEqual(one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"], labels)
        self.assertLess(
            one("PodDisruptionBudget")["spec"]["maxUnavailable"],
            one("Deployment")["spec"]["replicas"],
        )


class GatewayConfigTests(SynchronousTestCase):
    """The ConfigMap's configuration is one the gateway loads."""

    def test_loads(self) -> None:
        """It loads: its pods are in connection mode."""
        config = load_config(materialise(os.path.abspath(self.mktemp())))
        self.assertEqual(config.backend, "kubernetes")
        self.assertEqual(config.kubernetes.pod.mode, "connection")

    def test_valid(self) -> None:
        """Every other check passes: the in-cluster connection, the pod, health and metrics."""
        config = gateway_config(self)
        validate_config(config)
        self.assertEqual(config.backend, "kubernetes")
        self.assertTrue(config.health.enable)
        self.assertTrue(config.metrics.enable)
        self.assertEqual(config.kubernetes.connection.host, "kubernetes.default.svc")

    def test_placeholder_host_key_refused(self) -> None:
        """The Secret as shipped holds no key, and the gateway refuses to start with it."""
        directory = os.path.abspath(self.mktemp())
        placeholder = one("Secret")["stringData"]["ssh_host_ed25519_key"]
        path = write(directory, "ssh_host_ed25519_key", placeholder, mode=0o600)
        with self.assertRaises(ConfigError) as raised:
            parse_config({"ssh": {"hostkeys": [path]}})
        self.assertEqual(raised.exception.key_path, "ssh.hostkeys[0]")


def migration_example() -> tuple[str, str]:
    """The before and after YAML of docs/kubernetes.md's "Migrating from kuberun"."""
    with open(os.path.join(os.path.dirname(MANIFESTS), "kubernetes.md"), encoding="utf-8") as file:
        text = file.read()
    section = text.split("## Migrating from kuberun", 1)[1]
    blocks = [block.split("```", 1)[0] for block in section.split("```yaml\n")[1:]]
    before, after = blocks[:2]
    return before, after


class DocumentationTests(SynchronousTestCase):
    """The kuberun migration example in docs/kubernetes.md says what the translation does."""

    def test_example_translates_to_its_after(self) -> None:
        """The kuberun example and the kubernetes section beside it configure the same."""
        accounts = service_account_files(os.path.abspath(self.mktemp()))
        before, after = (
            parse_config(yaml.safe_load(text.replace(SERVICE_ACCOUNT_DIR, accounts)))
            for text in migration_example()
        )
        self.assertEqual(before.backend, after.backend)
        self.assertEqual(before.kubernetes, after.kubernetes)
        self.assertEqual(before.security.command, after.security.command)
