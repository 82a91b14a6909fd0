"""The official Python client against the test API server: pods, watch, errors.

Real server process, real Docker containers; the client is the ``kubernetes``
package the backend uses, so these tests fail if the server's JSON shapes
differ from what it deserialises.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.testing.kubeapi.support import (
    core_api,
    pod_containers,
    pod_manifest,
    shared_server,
    unique,
    wait_for,
)

NS = "default"


class PodTestCase(SynchronousTestCase):
    """Creates pods on the shared server and deletes them after the test."""

    def setUp(self) -> None:
        self.server = shared_server()
        self.api = core_api(self.server)

    def create(self, manifest: dict[str, Any]) -> Any:
        pod = self.api.create_namespaced_pod(NS, manifest)
        self.addCleanup(self._delete, pod.metadata.name)
        return pod

    def _delete(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.delete_namespaced_pod(name, NS, grace_period_seconds=0)
        except ApiException as e:
            if e.status != 404:
                raise
        wait_for(lambda: not pod_containers(name), f"removal of the containers of {name}")

    def phase(self, name: str, *phases: str) -> Any:
        def reached() -> Any:
            pod = self.api.read_namespaced_pod(name, NS)
            return pod if pod.status.phase in phases else None

        return wait_for(reached, f"pod {name} in {phases}")

    def error(self, call: Any, *args: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        """The status code and the ``Status`` body of a call that must fail."""
        from kubernetes.client.exceptions import ApiException

        try:
            call(*args, **kwargs)
        except ApiException as e:
            return e.status, json.loads(e.body)
        raise AssertionError("the call succeeded")


class LifecycleTests(PodTestCase):
    def test_create_get_list(self) -> None:
        """A created pod has a uid, a resource version, its labels and the spec's defaults,
        and is found by get and by a label selector, and not by another selector."""
        label = unique("app")
        created = self.create(pod_manifest(labels={"app": label}))
        self.assertTrue(created.metadata.name.startswith("test-"))
        self.assertTrue(created.metadata.uid)
        self.assertTrue(created.metadata.resource_version)
        self.assertIsNotNone(created.metadata.creation_timestamp)
        self.assertEqual(
            created.spec.containers[0].termination_message_path, "/dev/termination-log"
        )
        self.assertEqual(created.spec.dns_policy, "ClusterFirst")
        fetched = self.api.read_namespaced_pod(created.metadata.name, NS)
        self.assertEqual(fetched.metadata.uid, created.metadata.uid)
        self.assertEqual(fetched.metadata.labels, {"app": label})
        listed = self.api.list_namespaced_pod(NS, label_selector=f"app={label}")
        self.assertEqual([p.metadata.name for p in listed.items], [created.metadata.name])
        self.assertEqual(
            self.api.list_namespaced_pod(NS, label_selector=f"app={label}-x").items, []
        )
        everywhere = self.api.list_pod_for_all_namespaces(label_selector=f"app in ({label})")
        self.assertEqual(len(everywhere.items), 1)

    def test_ready_then_running_container(self) -> None:
        """A pod becomes Running with the Ready condition, its container running in Docker."""
        created = self.create(pod_manifest())
        pod = self.phase(created.metadata.name, "Running")
        conditions = {c.type: c.status for c in pod.status.conditions}
        self.assertEqual(conditions["Ready"], "True")
        status = pod.status.container_statuses[0]
        self.assertIsNotNone(status.state.running.started_at)
        self.assertTrue(status.ready)
        self.assertTrue(status.container_id.startswith("docker://"))
        [container] = pod_containers(created.metadata.name)
        self.assertEqual(container["State"], "running")
        self.assertEqual(status.container_id, "docker://" + container["Id"])

    def test_succeeded_and_failed(self) -> None:
        """A container that ends makes the pod Succeeded (0) or Failed, with its exit code."""
        ok = self.create(pod_manifest(command=["true"]))
        bad = self.create(pod_manifest(command=["sh", "-c", "exit 7"]))
        pod = self.phase(ok.metadata.name, "Succeeded", "Failed")
        self.assertEqual(pod.status.phase, "Succeeded")
        self.assertEqual(pod.status.container_statuses[0].state.terminated.exit_code, 0)
        pod = self.phase(bad.metadata.name, "Succeeded", "Failed")
        self.assertEqual(pod.status.phase, "Failed")
        terminated = pod.status.container_statuses[0].state.terminated
        self.assertEqual((terminated.exit_code, terminated.reason), (7, "Error"))

    def test_missing_image(self) -> None:
        """An image the engine does not have is ErrImagePull, then ImagePullBackOff; Pending."""
        created = self.create(pod_manifest(image="conch-container/no-such-image:1"))

        def waiting() -> Any:
            pod = self.api.read_namespaced_pod(created.metadata.name, NS)
            state = pod.status.container_statuses[0].state
            return pod if state.waiting and state.waiting.reason == "ImagePullBackOff" else None

        pod = wait_for(waiting, "ImagePullBackOff")
        self.assertEqual(pod.status.phase, "Pending")
        self.assertEqual(pod_containers(created.metadata.name), [])

    def test_spec_fields_reach_the_container(self) -> None:
        """env, workingDir and runAsUser are those of the program; args follow command."""
        check = 'test "$GREETING $(pwd) $(id -u)" = "hi /tmp 1234"'
        manifest = pod_manifest(
            command=["sh", "-c"],
            args=[check],
            env=[{"name": "GREETING", "value": "hi"}],
            workingDir="/tmp",
            securityContext={"runAsUser": 1234},
        )
        created = self.create(manifest)
        pod = self.phase(created.metadata.name, "Succeeded", "Failed")
        self.assertEqual(pod.status.phase, "Succeeded")

    def test_watch_and_delete(self) -> None:
        """A watch from a list's version sees the pod Running, then deleted; its containers go."""
        from kubernetes import watch

        label = unique("w")
        version = self.api.list_namespaced_pod(
            NS, label_selector=f"w={label}"
        ).metadata.resource_version
        created = self.create(pod_manifest(labels={"w": label}))
        name = created.metadata.name
        seen: list[tuple[str, str, bool]] = []
        stream = watch.Watch().stream(
            self.api.list_namespaced_pod,
            NS,
            label_selector=f"w={label}",
            resource_version=version,
            timeout_seconds=30,
        )
        for event in stream:
            pod = event["object"]
            seen.append(
                (event["type"], pod.status.phase, pod.metadata.deletion_timestamp is not None)
            )
            if event["type"] == "MODIFIED" and pod.status.phase == "Running" and not seen[-1][2]:
                deleted = self.api.delete_namespaced_pod(name, NS, grace_period_seconds=1)
                self.assertIsNotNone(deleted.metadata.deletion_timestamp)
            if event["type"] == "DELETED":
                break
        self.assertEqual(seen[0][:2], ("ADDED", "Pending"))
        self.assertIn(("MODIFIED", "Running", False), seen)
        self.assertEqual(seen[-1][0], "DELETED")
        wait_for(lambda: not pod_containers(name), "removal of the pod's containers")
        status, body = self.error(self.api.read_namespaced_pod, name, NS)
        self.assertEqual((status, body["reason"]), (404, "NotFound"))


class ErrorTests(PodTestCase):
    def test_unauthorized(self) -> None:
        """Without the right token every call is 401 with an Unauthorized Status."""
        for token in ("wrong", ""):
            api = core_api(self.server, token=token)
            status, body = self.error(api.list_namespaced_pod, NS)
            self.assertEqual(status, 401)
            self.assertEqual(
                body,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": "Unauthorized",
                    "reason": "Unauthorized",
                    "code": 401,
                },
            )

    def test_not_found(self) -> None:
        """An unknown pod is 404 NotFound naming it, for get and delete."""
        for call in (self.api.read_namespaced_pod, self.api.delete_namespaced_pod):
            status, body = self.error(call, "no-such-pod", NS)
            self.assertEqual(status, 404)
            self.assertEqual(body["reason"], "NotFound")
            self.assertEqual(body["message"], 'pods "no-such-pod" not found')
            self.assertEqual(body["details"], {"name": "no-such-pod", "kind": "pods"})

    def test_already_exists(self) -> None:
        """A second pod of the same name is 409 AlreadyExists."""
        name = unique("dup")
        self.create(pod_manifest(name=name))
        status, body = self.error(self.api.create_namespaced_pod, NS, pod_manifest(name=name))
        self.assertEqual((status, body["reason"], body["code"]), (409, "AlreadyExists", 409))
        self.assertEqual(body["message"], f'pods "{name}" already exists')

    def test_invalid(self) -> None:
        """A spec without an image, or with a field that would change behaviour, is 422 Invalid."""
        manifest = pod_manifest(name=unique("bad"), image="")
        manifest["spec"]["volumes"] = [{"name": "v", "emptyDir": {}}]
        status, body = self.error(self.api.create_namespaced_pod, NS, manifest)
        self.assertEqual((status, body["reason"], body["details"]["kind"]), (422, "Invalid", "Pod"))
        fields = {c["field"]: c["reason"] for c in body["details"]["causes"]}
        self.assertEqual(
            fields,
            {
                "spec.containers[0].image": "FieldValueRequired",
                "spec.volumes": "FieldValueNotSupported",
            },
        )
        self.assertTrue(
            body["message"].startswith(f'Pod "{manifest["metadata"]["name"]}" is invalid: ')
        )
