"""A batching queue: one worker thread per loaded base turns waiting requests into batches.

Requests carry a key; only requests with equal keys (same adapter, same generation settings) share
a batch. The worker repeatedly picks a batch, runs one batched call, resolves the futures:

- if some key has a full batch queued (``batch_size`` requests), that batch runs at once
  (preferring a batch whose requests are all of one group, e.g. one adapter);
- otherwise the oldest request's key is taken, after waiting only while more requests are
  expected: while callers whose last batch just finished have not come back yet (an eval's
  samples send their next request, or new samples start, right after a batch ends; waiting at
  most ``max_wait_fraction`` of that key's last batch time, counted from when the oldest waiting
  request arrived), or, when none are expected, while new
  requests keep arriving less than ``settle`` seconds apart (at most ``10 * settle``).

There is no fixed wait: a lone request runs after ``settle`` (20 ms by default), and
``settle=0`` disables all waiting (whatever is queued runs at once).

With ``lanes`` > 1, that many worker threads take batches from the one queue, each of at most
``ceil(batch_size / lanes)`` requests, and a lane that finds other lanes busy first takes a full
batch of the key and group they are running (a batch for another adapter would wait for them).
When ``overlap()`` says that batches of different groups can run at once (adapters routed per
row), lanes take larger batches: ``batch_size`` requests at once when every free lane can have
that many, else, once arrivals settle, an equal share of the queued requests of the key among
the free lanes (fewer, larger batches decode more tokens per second per lane; an equal share
keeps the lanes evenly busy).
On a CPU, lanes of one intra-op thread each keep the cores busier than one lane whose small
per-token operations are split across threads (``lane_setup`` runs first on each lane's thread;
see :func:`inspect_misalign.models._threads.lane_threads`).

With ``run_stream``, keys that ``can_stream`` accepts are decoded by continuous batching instead:
the stream answers each request as soon as it is done and asks, between its steps, for more
requests (``take(n, least)``: up to n, none if fewer than ``least`` wait) of the same key (and
of the same group, when its first batch was of one group) to fill the rows that came free. It
stops admitting once a request it would not take is waiting, so other keys and groups are
served next.
"""

from __future__ import annotations

import asyncio
import atexit
import math
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

Take = Callable[[int, int], list["Request[Any]"]]
Finish = Callable[["Request[Any]", Any], None]

MAX_WAIT_SECONDS = 10.0
EXIT_WAIT_SECONDS = 30.0
"""At interpreter exit, how long to wait for lanes still running a batch (see :func:`_drain_at_exit`)."""
_MIXED = object()  # the group of a running batch that mixes groups


@dataclass(eq=False)
class Request(Generic[T]):
    """One queued call: ``payload`` is handed to the batch function with the others of its batch."""

    key: Hashable
    payload: Any
    batch_size: int
    group: Hashable = None
    future: Future[T] = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


async def wait_future(future: Future[T]) -> T:
    """Await a thread's future from async code (asyncio directly; other backends poll)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        return await asyncio.wrap_future(future, loop=loop)
    import anyio

    while not future.done():
        await anyio.sleep(0.005)
    return future.result()


class Batcher(Generic[T]):
    """Runs ``run_batch(requests) -> results`` (one result per request) on a worker thread."""

    def __init__(
        self,
        run_batch: Callable[[list[Request[T]]], Sequence[T]],
        settle: float = 0.02,
        max_wait_fraction: float = 0.5,
        name: str = "misalign-batcher",
        run_stream: Callable[[list[Request[T]], Take, Finish], None] | None = None,
        can_stream: Callable[[Hashable], bool] | None = None,
        lanes: int = 1,
        lane_setup: Callable[[], None] | None = None,
        overlap: Callable[[], bool] | None = None,
    ) -> None:
        if lanes < 1:
            raise ValueError(f"lanes must be 1 or more, got {lanes}")
        self.lanes = lanes
        self._lane_setup = lane_setup
        self._threads: list[threading.Thread] = []
        self._overlap = overlap
        self._running: dict[int, tuple[Hashable, Hashable]] = {}  # lane -> (key, group) it runs
        self._run_batch = run_batch
        self._run_stream = run_stream
        self._can_stream = can_stream
        self.settle = settle
        self.max_wait_fraction = max_wait_fraction
        self._pending: list[Request[T]] = []
        self._cond = threading.Condition()
        self._name = name
        self._arrivals = 0
        self._returned: dict[Hashable, int] = defaultdict(int)  # callers expected back, per key
        self._last_seconds: dict[Hashable, float] = {}
        self.batch_sizes: list[int] = []  # history, for tests and benchmarks
        _register(self)

    def submit(self, key: Hashable, payload: Any, batch_size: int, group: Hashable = None) -> Future[T]:
        """Queue a request and return its future.

        Requests with equal ``key`` may share a batch; a full batch of one ``group`` (e.g. one
        adapter) is preferred to a full batch that mixes groups.
        """
        request: Request[T] = Request(key=key, payload=payload, batch_size=max(1, batch_size), group=group)
        with self._cond:
            self._pending.append(request)
            self._arrivals += 1
            if self._returned[key] > 0:
                self._returned[key] -= 1
            self._ensure_worker()
            self._cond.notify_all()
        return request.future

    async def run(self, key: Hashable, payload: Any, batch_size: int, group: Hashable = None) -> T:
        """Queue a request and wait for its result without blocking the event loop."""
        return await wait_future(self.submit(key, payload, batch_size, group))

    def lane_batch(self, batch_size: int) -> int:
        """The most requests one lane takes at once when callers ask for ``batch_size``."""
        return max(1, math.ceil(max(1, batch_size) / self.lanes))

    def _lane_cap(self, key: Hashable, batch_size: int) -> int:
        """The most requests of ``key`` a lane takes now (the caller holds ``_cond``): the
        :meth:`lane_batch` share, or with ``overlap`` an equal share of the queued requests of
        ``key`` among the lanes not running a batch, up to ``batch_size``."""
        share = self.lane_batch(batch_size)
        if not self._overlapping():
            return share
        queued, free = self._backlog(key)
        return max(share, min(max(1, batch_size), math.ceil(queued / free)))

    def _full_at(self, key: Hashable, batch_size: int) -> int:
        """How many queued requests of ``key`` make a batch that runs at once (the caller holds
        ``_cond``): the :meth:`lane_batch` share; with ``overlap``, ``batch_size`` once every
        free lane can have that many, else never (the settle wait decides, see :meth:`_lane_cap`)."""
        if not self._overlapping():
            return self.lane_batch(batch_size)
        queued, free = self._backlog(key)
        return max(1, batch_size) if queued >= max(1, batch_size) * free else 1 << 30

    def _overlapping(self) -> bool:
        return self.lanes > 1 and self._overlap is not None and self._overlap()

    def _backlog(self, key: Hashable) -> tuple[int, int]:
        """(queued requests of ``key``, lanes not running a batch, at least 1)."""
        return sum(1 for r in self._pending if r.key == key), max(1, self.lanes - len(self._running))

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until no lane runs a batch; True if none does."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _ensure_worker(self) -> None:
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        while len(self._threads) < self.lanes:
            name = self._name if self.lanes == 1 else f"{self._name}-lane{len(self._threads)}"
            thread = threading.Thread(target=self._work, name=name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def _work(self) -> None:
        if self._lane_setup is not None:
            self._lane_setup()
        lane = threading.get_ident()
        while True:
            batch = self._next_batch(lane)
            live = [r for r in batch if r.future.set_running_or_notify_cancel()]
            if not live:
                self._lane_done(lane)
                continue
            self.batch_sizes.append(len(live))
            try:
                self._run_live(live)
            finally:
                self._lane_done(lane)

    def _lane_done(self, lane: int) -> None:
        with self._cond:
            self._running.pop(lane, None)
            self._cond.notify_all()

    def _run_live(self, live: list[Request[T]]) -> None:
        if self._streams(live[0].key):
            self._stream(live)
            return
        started = time.monotonic()
        try:
            results = self._run_batch(live)
            if len(results) != len(live):
                raise RuntimeError(f"batch gave {len(results)} results for {len(live)}")
        except BaseException as ex:  # noqa: BLE001 - every waiter must hear about it
            self._finished(live, time.monotonic() - started)
            for request in live:
                request.future.set_exception(ex)
            return
        self._finished(live, time.monotonic() - started)
        for request, result in zip(live, results, strict=True):
            request.future.set_result(result)

    def _streams(self, key: Hashable) -> bool:
        return self._run_stream is not None and self._can_stream is not None and self._can_stream(key)

    def _stream(self, first: list[Request[T]]) -> None:
        """Run one continuous-batching stream that starts with ``first``."""
        assert self._run_stream is not None
        key = first[0].key
        groups = {request.group for request in first}  # one group: admit only that group
        seconds: list[float] = []
        started: dict[int, float] = {id(request): time.monotonic() for request in first}

        def fits(request: Request[T]) -> bool:
            return request.key == key and (len(groups) > 1 or request.group in groups)

        def take(n: int, least: int = 1) -> list[Request[Any]]:
            if n <= 0:
                return []
            with self._cond:
                if len(self._pending) < least or not all(fits(r) for r in self._pending):
                    return []
                taken, self._pending = self._pending[:n], self._pending[n:]
            live = [r for r in taken if r.future.set_running_or_notify_cancel()]
            now = time.monotonic()
            started.update((id(r), now) for r in live)
            if live:
                self.batch_sizes.append(len(live))
            return live

        def finish(request: Request[Any], result: Any) -> None:
            seconds.append(time.monotonic() - started.pop(id(request), time.monotonic()))
            with self._cond:
                self._returned[key] += 1
                self._last_seconds[key] = sum(seconds) / len(seconds)
            if request.future.done():
                return
            if isinstance(result, BaseException):
                request.future.set_exception(result)
            else:
                request.future.set_result(result)

        try:
            self._run_stream(first, take, finish)
        except BaseException as ex:  # noqa: BLE001 - a stream must not kill the worker
            for request in first:
                if not request.future.done():
                    request.future.set_exception(ex)

    def _finished(self, batch: list[Request[T]], seconds: float) -> None:
        key = batch[0].key
        with self._cond:
            self._returned[key] += len(batch)
            self._last_seconds[key] = seconds

    def _next_batch(self, lane: int) -> list[Request[T]]:
        with self._cond:
            batch = self._choose()
            groups = {request.group for request in batch}
            self._running[lane] = (batch[0].key, groups.pop() if len(groups) == 1 else _MIXED)
            return batch

    def _choose(self) -> list[Request[T]]:
        """Wait for and remove the next batch (the caller holds ``_cond``)."""
        started = last_arrival = time.monotonic()
        arrivals = self._arrivals
        while True:
            if not self._pending:  # at first, or another lane took them while this one waited
                while not self._pending:
                    self._cond.wait()
                started = last_arrival = time.monotonic()
                arrivals = self._arrivals
            full = self._full_batch()
            if full is not None:
                return self._take(*full)
            key = self._pending[0].key
            now = time.monotonic()
            if self._arrivals != arrivals:
                arrivals, last_arrival = self._arrivals, now
            if self.settle <= 0:
                return self._take_now(key)
            expecting = self._returned[key] > 0
            if expecting:
                limit = min(max(self.max_wait_fraction * self._last_seconds.get(key, 0.0), self.settle),
                            MAX_WAIT_SECONDS)
                # a request that has already waited that long (left over from an earlier batch)
                # is not kept waiting for callers that may never come back
                oldest = min(r.enqueued for r in self._pending if r.key == key)
                deadline = min(started, oldest) + limit
            else:
                deadline = min(last_arrival + self.settle, started + 10 * self.settle)
            if now >= deadline:
                if expecting:
                    self._returned[key] = 0  # they are not coming back soon
                return self._take_now(key)
            self._cond.wait(timeout=deadline - now)

    def _take_now(self, key: Hashable) -> list[Request[T]]:
        """The oldest requests of ``key``: of a group other lanes are running, if any wait."""
        for running_key, group in self._running.values():
            if running_key == key and any(r.key == key and r.group == group for r in self._pending):
                return self._take(key, group)
        return self._take(key)

    def _full_batch(self) -> tuple[Hashable, Hashable] | tuple[Hashable] | None:
        """(key, group) of the oldest full one-group batch, preferring one that other lanes are
        running; else (key,) of a full batch."""
        running = set(self._running.values())
        caps: dict[tuple[Hashable, int], int] = {}

        def cap(request: Request[T]) -> int:
            at = (request.key, request.batch_size)
            if at not in caps:
                caps[at] = self._full_at(*at)
            return caps[at]

        groups: dict[tuple[Hashable, Hashable], int] = defaultdict(int)
        first: tuple[Hashable, Hashable] | None = None
        for request in self._pending:
            pair = (request.key, request.group)
            groups[pair] += 1
            if groups[pair] >= cap(request):
                if pair in running or not running:
                    return pair
                first = first or pair
        if first is not None:
            return first
        keys: dict[Hashable, int] = defaultdict(int)
        for request in self._pending:
            keys[request.key] += 1
            if keys[request.key] >= cap(request):
                return (request.key,)
        return None

    def _take(self, key: Hashable, *group: Hashable) -> list[Request[T]]:
        """Remove and return the oldest requests of ``key`` (and ``group``, if given)."""
        batch: list[Request[T]] = []
        rest: list[Request[T]] = []
        limit = 1 << 30
        for request in self._pending:
            fits = request.key == key and (not group or request.group == group[0])
            if fits and not batch:
                limit = self._lane_cap(key, request.batch_size)
            if fits and len(batch) < limit:
                batch.append(request)
            else:
                rest.append(request)
        self._pending = rest
        return batch


_batchers: weakref.WeakSet[Batcher[Any]] = weakref.WeakSet()
_batchers_lock = threading.Lock()
_drain_registered = False


def _register(batcher: Batcher[Any]) -> None:
    global _drain_registered
    with _batchers_lock:
        if not _drain_registered:
            atexit.register(_drain_at_exit)
            _drain_registered = True
        _batchers.add(batcher)


def _drain_at_exit() -> None:
    """Let lanes finish the batch they are running before the interpreter finalizes.

    Lanes are daemon threads. A script that exits as soon as its last answer arrives would
    otherwise finalize while a lane is still freeing that batch's KV cache inside torch's C++
    code; the lane is then stopped there and the process aborts (``terminate called without an
    active exception``, exit code 134). Idle lanes wait in Python and are stopped harmlessly.
    """
    deadline = time.monotonic() + EXIT_WAIT_SECONDS
    for batcher in list(_batchers):
        batcher.wait_idle(max(0.0, deadline - time.monotonic()))
