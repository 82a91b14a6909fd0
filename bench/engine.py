"""The Docker engine, through the ``docker`` command line as a user would drive it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bench.procs import BenchError, run_quietly

#: Label on every container this benchmark runs itself, so that an interrupted
#: ``docker run --rm`` can still be found and removed.
BENCH_LABEL = "conch-container.bench"


def engine_version() -> str:
    """The engine's version and storage driver, e.g. ``20.10.24 (vfs)``."""
    version = run_quietly(["docker", "version", "--format", "{{.Server.Version}}"]).strip()
    driver = run_quietly(["docker", "info", "--format", "{{.Driver}}"]).strip()
    return f"{version} ({driver})"


def check_image(image: str) -> None:
    """Raise unless ``image`` exists locally (nothing is ever pulled)."""
    try:
        run_quietly(["docker", "image", "inspect", "--format", "{{.Id}}", image])
    except BenchError:
        raise BenchError(
            f"image {image} is not in the engine; build it: scripts/build-guest-image"
        ) from None


def docker_run_argv(image: str, run_id: str, command: list[str]) -> list[str]:
    """``docker run --rm IMAGE COMMAND``, labelled for clean-up."""
    return ["docker", "run", "--rm", "--label", f"{BENCH_LABEL}={run_id}", image, *command]


def containers_labelled(label: str) -> list[str]:
    """IDs of all containers (running or not) carrying ``label`` (``key`` or ``key=value``)."""
    out = run_quietly(["docker", "ps", "--all", "--quiet", "--filter", f"label={label}"])
    return out.split()


def remove_containers(ids: list[str]) -> None:
    """Force-remove containers; best effort, as this runs during clean-up."""
    if ids:
        try:
            run_quietly(["docker", "rm", "--force", *ids])
        except BenchError:
            pass


def remove_labelled(*labels: str) -> None:
    """Force-remove every container carrying any of ``labels``; best effort."""
    ids: list[str] = []
    for label in labels:
        try:
            ids += containers_labelled(label)
        except BenchError:
            pass
    remove_containers(ids)


@contextmanager
def idle_container(image: str, run_id: str) -> Iterator[str]:
    """A labelled container of ``image`` that sleeps until removed; its ID."""
    argv = ["docker", "run", "--detach", "--rm", "--label", f"{BENCH_LABEL}={run_id}",
            image, "sleep", "86400"]  # fmt: skip
    container_id = run_quietly(argv).strip()
    try:
        yield container_id
    finally:
        remove_containers([container_id])


def docker_exec_argv(container_id: str, command: str, stdin: bool = False) -> list[str]:
    """``docker exec [-i] CONTAINER sh -c COMMAND``: the engine's own stream, no SSH."""
    return ["docker", "exec", *(["-i"] if stdin else []), container_id, "sh", "-c", command]
