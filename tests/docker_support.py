"""Reaching the real Docker engine from tests.

A test that needs the engine and finds none is skipped on a developer's
machine, but fails when ``CONCH_CONTAINER_REQUIRE_DOCKER`` is set (the
project's test command and CI set it), so CI can never pass by skipping.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.trial.unittest import SkipTest

GUEST_IMAGE = os.environ.get("CONCH_CONTAINER_GUEST_IMAGE", "conch-container/guest:latest")
DOCKER_HOST = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


class DockerUnavailable(AssertionError):
    """The engine (or the guest image) is missing where the tests require it."""


def docker_client() -> Any:
    """A docker-py low-level client for checks from tests, or skip/fail when there is none."""
    try:
        import docker

        client = docker.APIClient(base_url=DOCKER_HOST, version="auto", timeout=30)
        client.inspect_image(GUEST_IMAGE)
    except Exception as e:
        reason = f"no Docker engine with {GUEST_IMAGE} at {DOCKER_HOST}: {e}"
        if os.environ.get("CONCH_CONTAINER_REQUIRE_DOCKER"):
            raise DockerUnavailable(reason) from e
        raise SkipTest(reason) from e
    return client
