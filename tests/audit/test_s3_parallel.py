"""``parallelUploads``: how many transfers run at once, across every stream of the gateway.

The storage runs on a real thread pool that counts its calls by function
(:mod:`tests.backend.countingpool`) and holds part uploads at a gate until
the test opens it: so the limit is seen reached, and not passed, without
depending on how fast anything runs.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import Any

from conch_container.audit.storage.s3.client import thd_put_object, thd_upload_part
from tests.audit.s3_case import PATIENCE, MiB, S3TestCase
from tests.backend.countingpool import CountingThreadPool, function_name

UPLOAD_PART = thd_upload_part.__name__
TRANSFERS = {UPLOAD_PART, thd_put_object.__name__}


def transfers(func: Callable[..., Any], args: tuple[Any, ...]) -> str:
    """Counts part and single uploads as one kind, ``transfer``."""
    name = function_name(func, args)
    return "transfer" if name in TRANSFERS else name


class GatedPool(CountingThreadPool):
    """Counts calls by function; calls of ``gated`` wait for :attr:`gate` before running."""

    def __init__(self, *args: Any, gated: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self._gated = gated

    def callInThreadWithCallback(
        self,
        onResult: Callable[[bool, Any], object] | None,
        func: Callable[..., Any],
        *args: Any,
        **kw: Any,
    ) -> None:
        if getattr(func, "__name__", None) == self._gated:
            inner = func

            @functools.wraps(inner)
            def held(*a: Any, **k: Any) -> Any:
                self.gate.wait(PATIENCE)
                return inner(*a, **k)

            func = held
        super().callInThreadWithCallback(onResult, func, *args, **kw)


class ParallelUploadsTests(S3TestCase):
    async def test_limit_across_streams(self) -> None:
        """With parallelUploads 2 and four streams each with a part ready, two upload at once."""
        pool = GatedPool(minthreads=0, maxthreads=8, name="audit-s3-test", gated=UPLOAD_PART)
        self.addCleanup(pool.gate.set)  # never leave a thread waiting at the gate
        storage = await self.storage(self.config(parallel_uploads=2), thread_pool=pool)
        streams = []
        for _ in range(4):
            info = self.info()
            sink = await self.open(storage, info)
            data = os.urandom(5 * MiB + 1000)
            await self.write(sink, data)
            streams.append((info, sink, data, storage.wait_uploaded(info.connection_id)))
        slots = storage.upload_slots
        await self.eventually(
            lambda: pool.outstanding(UPLOAD_PART) == 2 and len(slots.waiting) == 2,
            "two part uploads running and two waiting for a slot",
        )
        self.assertEqual(pool.most(UPLOAD_PART), 2)
        pool.gate.set()
        for info, sink, data, done in streams:
            await self.close(sink)
            self.assertTrue(await done)
            self.assertEqual((await self.get(info.connection_id))["Body"], data)
        self.assertEqual(pool.most(UPLOAD_PART), 2)
        self.assertEqual(slots.tokens, 2)

    async def test_limit_of_one(self) -> None:
        """With parallelUploads 1, transfers (parts and single uploads) run one at a time."""
        pool = CountingThreadPool(minthreads=0, maxthreads=5, name="audit-s3-test", kind=transfers)
        storage = await self.storage(self.config(parallel_uploads=1), thread_pool=pool)
        recorded = [await self.record(storage, os.urandom(size)) for size in (10, 6 * MiB, 20)]
        for info in recorded:
            self.assertTrue(await storage.wait_uploaded(info.connection_id))
        self.assertEqual(pool.most("transfer"), 1)
