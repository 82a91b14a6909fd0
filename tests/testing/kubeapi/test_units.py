"""The server's pure parts, without Docker or sockets: selectors, specs, store, watch."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from conch_container.testing.kubeapi import podspec, podstatus
from conch_container.testing.kubeapi.selectors import field_matcher, label_matcher
from conch_container.testing.kubeapi.status import ApiError, exec_result
from conch_container.testing.kubeapi.store import PodStore
from conch_container.testing.kubeapi.watch import MAX_QUEUED, Watch


def pod(
    name: str, labels: dict[str, str] | None = None, namespace: str = "default"
) -> dict[str, Any]:
    p: dict[str, Any] = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": podspec.with_defaults({"containers": [{"name": "main", "image": "img:1"}]}),
    }
    podstatus.initial_status(p, 0.0)
    return p


class SelectorTests(SynchronousTestCase):
    def test_label_operators(self) -> None:
        """=, ==, !=, in, notin, existence and its negation, joined by commas."""
        p = pod("a", {"app": "web", "tier": "front"})
        cases = {
            "app=web": True,
            "app==web": True,
            "app!=web": False,
            "app in (db, web)": True,
            "app notin (db,web)": False,
            "tier": True,
            "!tier": False,
            "!missing,app=web": True,
            "app=web,tier=back": False,
            "": True,
        }
        for selector, expected in cases.items():
            self.assertEqual(label_matcher(selector)(p), expected, selector)

    def test_bad_selectors(self) -> None:
        """Unreadable label selectors and unknown fields are 400 BadRequest."""
        for bad in ("app=(", "!app=x"):
            self.assertEqual(self.assertRaises(ApiError, label_matcher, bad).code, 400)
        error = self.assertRaises(ApiError, field_matcher, "spec.nodeName=x")
        self.assertEqual(error.status["reason"], "BadRequest")

    def test_fields(self) -> None:
        """metadata.name, metadata.namespace and status.phase select; != negates."""
        p = pod("a")
        self.assertTrue(field_matcher("metadata.name=a,status.phase=Pending")(p))
        self.assertFalse(field_matcher("metadata.namespace!=default")(p))


class PodSpecTests(SynchronousTestCase):
    def causes(self, spec: dict[str, Any], name: str = "p") -> dict[str, str]:
        error = self.assertRaises(
            ApiError, podspec.validate, {"metadata": {"name": name}, "spec": spec}
        )
        self.assertEqual(error.code, 422)
        return {c["field"]: c["reason"] for c in error.status["details"]["causes"]}

    def test_refused_fields(self) -> None:
        """Fields that would change behaviour are refused, each with its path."""
        spec = {
            "restartPolicy": "Always",
            "initContainers": [],
            "containers": [
                {
                    "name": "a",
                    "image": "i",
                    "livenessProbe": {},
                    "env": [{"name": "X", "valueFrom": {}}],
                },
                {"name": "a", "image": "i", "securityContext": {"privileged": True}},
            ],
        }
        self.assertEqual(
            self.causes(spec),
            {
                "spec.restartPolicy": "FieldValueNotSupported",
                "spec.initContainers": "FieldValueNotSupported",
                "spec.containers[0].livenessProbe": "FieldValueNotSupported",
                "spec.containers[0].env[0]": "FieldValueNotSupported",
                "spec.containers[1].name": "FieldValueDuplicate",
                "spec.containers[1].securityContext": "FieldValueNotSupported",
            },
        )

    def test_names(self) -> None:
        """A pod needs a valid name or generateName; containers need one too."""
        self.assertIn(
            "metadata.name",
            self.causes({"containers": [{"name": "a", "image": "i"}]}, name="Bad_Name"),
        )
        self.assertIn("spec.containers[0].name", self.causes({"containers": [{"image": "i"}]}))
        podspec.validate(
            {
                "metadata": {"generateName": "x-"},
                "spec": {"containers": [{"name": "a", "image": "i"}]},
            }
        )

    def test_pod_hostname(self) -> None:
        """spec.hostname, else the pod's name cut to a DNS label."""
        named = {"metadata": {"name": "p"}, "spec": {"hostname": "h"}}
        self.assertEqual(podspec.pod_hostname(named), "h")
        long = {"metadata": {"name": "a" * 62 + "-b"}, "spec": {}}
        self.assertEqual(podspec.pod_hostname(long), "a" * 62)

    def test_docker_body(self) -> None:
        """command is the entrypoint, args the command; stdin, tty, user, env, labels carry."""
        container = {
            "name": "a",
            "image": "i",
            "command": ["sh"],
            "args": ["-c", "true"],
            "env": [{"name": "A", "value": "1"}],
            "stdin": True,
            "stdinOnce": True,
            "tty": True,
            "workingDir": "/w",
            "securityContext": {"runAsUser": 7},
        }
        body = podspec.docker_body(container, {"l": "v"})
        self.assertEqual(
            (body["Entrypoint"], body["Cmd"], body["Env"]), (["sh"], ["-c", "true"], ["A=1"])
        )
        self.assertEqual((body["OpenStdin"], body["StdinOnce"], body["Tty"]), (True, True, True))
        self.assertEqual(
            (body["User"], body["WorkingDir"], body["Labels"]), ("7", "/w", {"l": "v"})
        )
        self.assertEqual(body["HostConfig"], {"NetworkMode": "none"})
        self.assertNotIn("Hostname", body)
        plain = podspec.docker_body({"name": "a", "image": "i"}, {}, "pod-1")
        self.assertEqual(plain["Hostname"], "pod-1")
        self.assertNotIn("Entrypoint", plain)
        self.assertNotIn("Cmd", plain)


class StatusTests(SynchronousTestCase):
    def test_phases(self) -> None:
        """Pending while creating, Running and Ready once started, Failed on a non-zero exit."""
        p = pod("a")
        self.assertEqual(p["status"]["phase"], "Pending")
        podstatus.set_running(p, "main", "id", "img:1", 10.0)
        podstatus.refresh(p, 10.0)
        ready = {c["type"]: c["status"] for c in p["status"]["conditions"]}
        self.assertEqual((p["status"]["phase"], ready["Ready"]), ("Running", "True"))
        podstatus.set_terminated(p, "main", 2, 20.0)
        podstatus.refresh(p, 20.0)
        terminated = p["status"]["containerStatuses"][0]["state"]["terminated"]
        self.assertEqual((p["status"]["phase"], terminated["exitCode"]), ("Failed", 2))
        self.assertEqual(terminated["startedAt"], "1970-01-01T00:00:10Z")

    def test_exec_result(self) -> None:
        """Exit 0 is Success; another code is in details.causes[0].message."""
        self.assertEqual(exec_result(0)["status"], "Success")
        failed = exec_result(5)
        self.assertEqual(
            (failed["reason"], failed["details"]["causes"]),
            ("NonZeroExitCode", [{"reason": "ExitCode", "message": "5"}]),
        )


class StoreTests(SynchronousTestCase):
    def test_versions_and_history(self) -> None:
        """Each change gets the next version; since() gives the later ones, 410 past the history."""
        store = PodStore()
        a = pod("a")
        store.add(a)
        version = store.resource_version
        store.changed(a)
        store.remove(a)
        self.assertEqual([kind for kind, _ in store.since(version)], ["MODIFIED", "DELETED"])
        self.assertEqual(store.since(store.resource_version), [])
        for i in range(1001):
            store.add(pod(f"p{i}"))
        self.assertEqual(self.assertRaises(ApiError, store.since, "1").code, 410)


class _Request(DummyRequest):
    """DummyRequest pulls from any producer in a loop; a streaming one must not be pulled."""

    def registerProducer(self, producer: object, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None


class WatchTests(SynchronousTestCase):
    def lines(self, request: DummyRequest) -> list[tuple[str, str]]:
        events = [json.loads(line) for chunk in request.written for line in chunk.splitlines()]
        return [(e["type"], e["object"]["metadata"]["name"]) for e in events]

    def test_head_at_once(self) -> None:
        """The answer's head is written before any event, so clients see the watch begin."""
        request = _Request([b""])
        Watch(request, PodStore(), None, lambda p: True, [], 5, Clock())
        self.assertEqual(request.written, [b""])

    def test_filtered_events_and_timeout(self) -> None:
        """A pod that stops matching is DELETED for the watch; the watch ends at its timeout."""
        store, clock = PodStore(), Clock()
        request = _Request([b""])
        a = pod("a", {"app": "x"})
        store.add(a)
        Watch(request, store, "default", label_matcher("app=x"), [("ADDED", a)], 5, clock)
        store.add(pod("b", {"app": "y"}))
        store.add(pod("c", {"app": "x"}, namespace="other"))
        a["metadata"]["labels"] = {"app": "y"}
        store.changed(a)
        self.assertEqual(self.lines(request), [("ADDED", "a"), ("DELETED", "a")])
        self.assertEqual(request.finished, 0)
        clock.advance(5)
        self.assertEqual(request.finished, 1)
        store.add(pod("d", {"app": "x"}))
        self.assertEqual(len(self.lines(request)), 2)

    def test_from_a_version(self) -> None:
        """From a list's version, changes to pods the client listed pass as they are: a pod
        deleted before the watch began is DELETED, a modified one MODIFIED."""
        store, clock = PodStore(), Clock()
        a, b = pod("a"), pod("b")
        store.add(a)
        store.add(b)
        version = store.resource_version
        store.changed(b)
        store.remove(a)
        request = _Request([b""])
        Watch(request, store, "default", field_matcher(""), store.since(version), 5, clock)
        self.assertEqual(self.lines(request), [("MODIFIED", "b"), ("DELETED", "a")])

    def test_slow_reader(self) -> None:
        """A paused client's events are queued and sent on resume; past the bound the watch ends."""
        store, clock = PodStore(), Clock()
        request = _Request([b""])
        watch = Watch(request, store, None, lambda p: True, [], 60, clock)
        watch.pauseProducing()
        store.add(pod("a"))
        self.assertEqual(self.lines(request), [])
        watch.resumeProducing()
        self.assertEqual(self.lines(request), [("ADDED", "a")])
        watch.pauseProducing()
        for i in range(MAX_QUEUED + 1):
            store.add(pod(f"p{i}"))
        self.assertEqual(request.finished, 1)
        self.assertFalse(clock.getDelayedCalls())
