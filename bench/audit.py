"""``./bench/run --only audit``: what recording costs a download, side by side.

Three gateways run at once, identical but for the ``audit`` section:

- ``off``: no audit log (the reference);
- ``s3``: ``binary`` format, stdout intercepted, ``s3`` storage on a real
  S3-compatible server (moto in server mode on loopback);
- ``s3-down``: the same, with the S3 endpoint down for the whole run (a
  loopback port nothing listens on): the spool takes everything.

Each round downloads the same bytes through each gateway in turn (rounds
interleaved, so all three share the machine's noise) and samples the
gateway's resident memory every 50 ms while it does. The report gives the
throughput of each as a ratio to ``off``, and each gateway's memory growth
over its resident size before the download. At the end the ``s3`` gateway's
objects are read back from the server and decoded: every byte downloaded
must be in them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import engine, servers
from bench.concurrency import memory_kib
from bench.measure import MIB, download, median
from bench.procs import LOOPBACK, BenchError, Server, free_port
from bench.report import GATEWAY_LABEL
from bench.sshclient import Client

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "audit-bench"
TARGETS = ("off", "s3", "s3-down")
#: What each round downloads: zeros (as the throughput benchmark), random bytes
#: (incompressible) and text (what a terminal prints: compressible, slow to deflate).
DATA = {
    "zeros": "head -c {size} /dev/zero",
    "random": "head -c {size} /dev/urandom",
    "text": "yes 'drwxr-xr-x 2 user group 4096 Dec  4 05:30 some-directory-name' | head -c {size}",
}
SAMPLE_INTERVAL = 0.05


def progress(text: str, end: str = "\n") -> None:
    print(text, end=end, file=sys.stderr, flush=True)


def requested(argv: Sequence[str]) -> bool:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--only")
    known, _ = pre.parse_known_args(list(argv))
    return bool(known.only == "audit")


@dataclass(frozen=True)
class Settings:
    size_mb: int
    rounds: int
    data: tuple[str, ...]
    python: str
    image: str
    json_path: Path | None


def parse_args(argv: Sequence[str]) -> Settings:
    parser = argparse.ArgumentParser(
        prog="bench/run --only audit",
        description="Download throughput and gateway memory with the audit log off, on (binary "
        "format to S3) and on with the S3 server down, side by side.",
    )
    parser.add_argument("--only", choices=["audit"], required=True)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--data",
        action="append",
        choices=sorted(DATA),
        help="what is downloaded (repeatable; default: zeros, random and text)",
    )
    parser.add_argument("--quick", action="store_true", help="1 round of 50 MB, zeros only")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--json", type=Path, dest="json_path")
    args = parser.parse_args(list(argv))
    image = os.environ.get("CONCH_CONTAINER_GUEST_IMAGE", "conch-container/guest:latest")
    if args.quick:
        return Settings(50, 1, ("zeros",), args.python, image, args.json_path)
    return Settings(
        args.size_mb,
        args.rounds,
        tuple(args.data or ("zeros", "random", "text")),
        args.python,
        image,
        args.json_path,
    )


@dataclass
class Gateway:
    client: Client
    server: Server
    spool: Path | None


@dataclass
class Result:
    """One target's samples for one kind of data."""

    rates: list[float] = field(default_factory=list)
    growth_mib: list[float] = field(default_factory=list)
    error: str | None = None


# -- the S3 server


@contextmanager
def s3_server(work: servers.Workspace, python: str) -> Iterator[str]:
    """moto in server mode on loopback; yields its endpoint URL, with the bucket created."""
    moto = Path(python).with_name("moto_server")
    if not moto.exists():
        raise BenchError(f"{moto} is missing: run through ./bench/run (it installs moto[server])")
    port = free_port()
    server = Server.start(
        "moto_server", [str(moto), "-H", LOOPBACK, "-p", str(port)], work.root / "moto.log"
    )
    try:
        server.wait_for_port(port, timeout=30.0)
        endpoint = f"http://{LOOPBACK}:{port}"
        s3_client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


def s3_client(endpoint: str) -> Any:
    import botocore.session

    session = botocore.session.get_session()
    return session.create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench-secret",
    )


# -- the gateways


def audit_section(work: servers.Workspace, name: str, endpoint: str | None) -> dict[str, Any]:
    if endpoint is None:
        return {"enable": False}
    spool = work.root / f"spool-{name}"
    spool.mkdir()
    return {
        "enable": True,
        "format": "binary",
        "storage": "s3",
        "intercept": {"stdout": True},
        "s3": {
            "local": str(spool),
            "endpoint": endpoint,
            "region": "us-east-1",
            "bucket": BUCKET,
            "accessKey": "bench",
            "secretKey": "bench-secret",
            "pathStyleAccess": True,
        },
    }


@contextmanager
def gateway(
    work: servers.Workspace, settings: Settings, name: str, endpoint: str | None
) -> Iterator[Gateway]:
    port = free_port()
    audit = audit_section(work, name, endpoint)
    target = servers.gateway_config(
        work, settings.image, port, extra={"audit": audit}, name=f"gateway-{name}"
    )
    argv = [settings.python, "-c", "from twisted.scripts.twistd import run; run()",
            "--nodaemon", "--pidfile=", "containerssh", "-c", str(target)]  # fmt: skip
    server = Server.start(f"gateway {name}", argv, work.root / f"gateway-{name}.log", cwd=ROOT)
    try:
        server.wait_for_port(port, timeout=30.0)
        spool = Path(audit["s3"]["local"]) if audit["enable"] else None
        yield Gateway(work.client(name, port, servers.GATEWAY_USER), server, spool)
    finally:
        server.stop(timeout=40.0)


# -- measuring


class MemorySampler:
    """The highest VmRSS of a process while it runs, sampled on a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline = memory_kib(pid, "VmRSS") or 0
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            rss = memory_kib(self.pid, "VmRSS")
            if rss is not None:
                self.peak = max(self.peak, rss)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.baseline) / 1024


def run_rounds(settings: Settings, gateways: dict[str, Gateway]) -> dict[str, dict[str, Result]]:
    size = settings.size_mb * MIB
    timeout = 60.0 + settings.size_mb / 2
    results = {data: {name: Result() for name in gateways} for data in settings.data}
    for data in settings.data:
        progress(f"==> {data}: 1 warm-up round, {settings.rounds} rounds of {settings.size_mb} MB")
        command = DATA[data].format(size=size)
        for n in range(1 + settings.rounds):
            progress("w" if n == 0 else ".", end="")
            for name, gw in gateways.items():
                result = results[data][name]
                if result.error is not None:
                    continue
                with MemorySampler(gw.server.process.pid) as memory:
                    try:
                        transfer = download(gw.client.argv(command, True), size, timeout)
                    except BenchError as e:
                        result.error = str(e)
                        continue
                if n > 0:
                    result.rates.append(transfer.rate_mib_s)
                    result.growth_mib.append(memory.growth_mib)
        progress("")
    return results


def uploaded_io_bytes(endpoint: str) -> tuple[int, int]:
    """(objects, stdout bytes) of every audit log on the S3 server."""
    from conch_container.audit.codec.binaryread import BinaryLogReader
    from conch_container.audit.message import MessageType

    client = s3_client(endpoint)
    objects = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    total = 0
    for item in objects:
        body = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"]
        reader = BinaryLogReader(body)
        for message in reader:
            if message.type == MessageType.IO and message.payload:
                total += len(message.payload["data"])
    return len(objects), total


def render(settings: Settings, results: dict[str, dict[str, Result]], check: str) -> str:
    lines = [
        f"audit log cost: {settings.rounds} rounds of a {settings.size_mb} MB download "
        f"(aes128-ctr, hmac-sha2-256), medians",
        f"{'data':8} {'gateway':10} {'MiB/s':>8} {'x off':>7} {'memory +MiB':>12}",
    ]
    for data, by_name in results.items():
        reference = by_name["off"]
        ref_rate = median(reference.rates) if reference.rates else None
        for name, result in by_name.items():
            if result.error is not None or not result.rates:
                lines.append(f"{data:8} {name:10} error: {result.error}")
                continue
            rate = median(result.rates)
            ratio = f"{rate / ref_rate:.2f}x" if ref_rate else "-"
            growth = max(result.growth_mib)
            lines.append(f"{data:8} {name:10} {rate:8.1f} {ratio:>7} {growth:12.1f}")
    lines.append(check)
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    settings = parse_args(argv)
    from bench.main import workspace

    try:
        engine.check_image(settings.image)
        with workspace() as work, ExitStack() as stack:
            endpoint = stack.enter_context(s3_server(work, settings.python))
            dead = f"http://{LOOPBACK}:{free_port()}"
            gateways = {
                name: stack.enter_context(gateway(work, settings, name, url))
                for name, url in (("off", None), ("s3", endpoint), ("s3-down", dead))
            }
            results = run_rounds(settings, gateways)
            progress("==> stopping the gateways (uploads finish)")
            spooled = gateways["s3-down"].spool
            kept = sum(1 for p in spooled.iterdir() if "." not in p.name) if spooled else 0
            for name in ("s3", "s3-down", "off"):
                gateways[name].server.stop(timeout=40.0)
            objects, io_bytes = uploaded_io_bytes(endpoint)
            downloads = (1 + settings.rounds) * len(settings.data)
            expected = downloads * settings.size_mb * MIB
            check = (
                f"s3: {objects} objects hold {io_bytes} bytes of output "
                f"({'all' if io_bytes == expected else 'NOT all'} of {expected} downloaded); "
                f"s3-down: {kept} logs kept in the spool"
            )
            print(render(settings, results, check))
            if settings.json_path is not None:
                settings.json_path.write_text(
                    json.dumps(
                        {
                            data: {name: vars(r) for name, r in by_name.items()}
                            for data, by_name in results.items()
                        },
                        indent=2,
                    )
                )
        ok = io_bytes == expected and all(
            r.error is None for by_name in results.values() for r in by_name.values()
        )
        return 0 if ok else 1
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        engine.remove_labelled(GATEWAY_LABEL)
