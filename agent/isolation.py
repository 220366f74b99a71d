"""Containing third-party detectors, and noticing when the main event loop stalls.

A third-party detector runs on its own event loop in its own thread (a *lane*). One that blocks
(`time.sleep`, a blocking socket) or spins the CPU stalls only its own lane: the main loop keeps
scanning with the other detectors and keeps answering /metrics, and the core's timeout, applied
from the main loop, marks that detector (and no other) as timed out. After QUARANTINE_AFTER
timeouts in a row in its own code (not while waiting for lookups, which may just be slow) the
detector is quarantined for the life of the process: it is given no more work, each target
gets an error for it (its categories stay "unknown", never "gone"), and its thread is stopped:
a pure-Python spin is interrupted with an asynchronous exception; a thread blocked inside
native code is left behind (it holds no GIL while blocked).

The built-in detectors (dijkwacht's own distribution) run on the main loop: they are trusted,
and a thread hop per call would slow the large scans down.

c-ares is driven from the main loop's selector and is not thread-safe, so a lane detector's
lookups (and HTTP probes) are run on the main loop through run_coroutine_threadsafe.

The watchdog is a thread that notices when the main loop has not turned for STALL seconds and
names the detector whose code the main thread is running (found by its `detect` frame).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import inspect
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

import structlog

from .detector import Detector, DetectorContext, TargetResolver
from .errors import describe
from .targets import Target

log = structlog.get_logger()

QUARANTINE_AFTER = 5  # timeouts in a row, in the detector's own code
STOP_GRACE = 0.5  # seconds a lane's thread gets to end, before and after each interrupt
STOP_ATTEMPTS = 3
STALL = 0.5  # seconds without a turn of the main loop that count as a stall
MAX_WARNINGS = 20  # ctx.warn() messages kept per detector and target; real detectors give one or two
_TICK = 0.1

T = TypeVar("T")


class DetectorStuck(BaseException):
    """Raised inside a quarantined detector's thread to end a spin (BaseException: `except
    Exception` in the plugin does not swallow it)."""


async def _on(loop: asyncio.AbstractEventLoop, coroutine: Awaitable[T]) -> T:
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, loop))  # type: ignore[arg-type]


class _Call:
    """One call of a detector on a lane. The main loop marks it abandoned when it gives up;
    `waiting` counts the lookups and probes it has in flight on the main loop."""

    __slots__ = ("abandoned", "waiting")

    def __init__(self) -> None:
        self.abandoned = False
        self.waiting = 0

    async def on(self, loop: asyncio.AbstractEventLoop, coroutine: Awaitable[T]) -> T:
        self.waiting += 1
        try:
            return await _on(loop, coroutine)
        finally:
            self.waiting -= 1


class BridgedResolver:
    """`ctx.dns` of a detector on a lane: the same calls, answered by the main loop's engine."""

    __slots__ = ("_resolver", "_main", "_call")

    def __init__(self, resolver: TargetResolver, main: asyncio.AbstractEventLoop, call: _Call) -> None:
        self._resolver = resolver
        self._main = main
        self._call = call

    async def resolve(self, name: str, qtype: str):
        return await self._call.on(self._main, self._resolver.resolve(name, qtype))

    async def addresses(self, name: str):
        return await self._call.on(self._main, self._resolver.addresses(name))


class BridgedHttp:
    """`ctx.http` of a detector on a lane (the aiohttp session belongs to the main loop)."""

    __slots__ = ("_http", "_main", "_call")

    def __init__(self, http: Any, main: asyncio.AbstractEventLoop, call: _Call) -> None:
        self._http = http
        self._main = main
        self._call = call

    async def headers(self, host: str, domain: str):
        return await self._call.on(self._main, self._http.headers(host, domain))


async def _contained(call: _Call, detector: Detector, target: Target, ctx: DetectorContext) -> tuple[Any, str]:
    """Run `detect` on the lane's loop; whatever the plugin raises comes back as a message.

    No signal is ever delivered to this thread, so KeyboardInterrupt and SystemExit here are the
    plugin's own; only the core's cancellation (its timeout) is passed on as cancellation.
    """
    if call.abandoned:  # queued behind a call that blocked the loop past the timeout
        return None, "abandoned"
    try:
        result = detector.detect(target, ctx)
        if not inspect.isawaitable(result):
            return None, f"detect() returned {type(result).__name__}, not a coroutine (declare it async def)"
        return await result, ""
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        return None, "raised CancelledError"
    except BaseException as exc:
        return None, describe(exc)


def _pass_warnings(lane_ctx: DetectorContext, ctx: DetectorContext) -> None:
    """What the detector reported with ctx.warn() on its lane, up to now (an abandoned call's
    later warnings are dropped), into the scan's context: strings only, at most MAX_WARNINGS."""
    noted = lane_ctx.warnings
    if type(noted) is not list:  # replaced by the detector: nothing of it may run here
        ctx.warn(f"ctx.warnings was replaced with {type(noted).__name__}: its warnings are lost (use ctx.warn())")
        return
    noted = noted[:]  # one copy: the lane's thread may still be appending
    for message in noted[:MAX_WARNINGS]:
        ctx.warn(message if type(message) is str else f"ctx.warn() takes a string, not {type(message).__name__}")
    if len(noted) > MAX_WARNINGS:
        ctx.warn(f"{len(noted) - MAX_WARNINGS} more warnings left out")


class Lane:
    """One third-party detector's thread and event loop."""

    def __init__(self, name: str, main: asyncio.AbstractEventLoop) -> None:
        self.name = name
        self.main = main
        self.timeouts = 0  # in a row
        self.quarantined = ""  # why, once quarantined
        self.ended = ""  # what ended the lane's loop, if something did
        self.loop = asyncio.new_event_loop()
        self.stopping: asyncio.Task[None] | None = None  # ending the thread, once asked to stop
        self._thread = threading.Thread(target=self._serve, name=f"dijkwacht-detector-{name}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
            tasks = asyncio.all_tasks(self.loop)
            for task in tasks:
                task.cancel()
            if tasks:
                self.loop.run_until_complete(asyncio.wait(tasks, timeout=STOP_GRACE))
        except BaseException as exc:  # a plugin callback's SystemExit or KeyboardInterrupt, or our interrupt
            self.ended = describe(exc)
        finally:
            self.loop.close()

    async def run(self, detector: Detector, target: Target, ctx: DetectorContext, timeout: float) -> tuple[Any, str, bool]:
        """(returned value, "", False) or (None, why it failed, whether that is transient: a
        timeout while waiting for lookups). Called on the main loop."""
        if not self.quarantined and not self._thread.is_alive():
            self.quarantine(f"its event loop ended ({self.ended or 'stopped by the plugin'})")
        if self.quarantined:
            return None, f"quarantined: {self.quarantined}", False
        call = _Call()
        lane_ctx = DetectorContext(
            BridgedResolver(ctx.dns, self.main, call), ctx.catalog, ctx.ip, ctx.settings, None if ctx.http is None else BridgedHttp(ctx.http, self.main, call)
        )
        coroutine = _contained(call, detector, target, lane_ctx)
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        except RuntimeError:  # the loop closed just now
            coroutine.close()
            return None, "its event loop ended", False
        waiter = self.main.create_future()
        future.add_done_callback(lambda done: self._settle(waiter, done))
        try:
            async with asyncio.timeout(timeout):
                outcome = await waiter
        except BaseException as exc:  # the timeout, or the scan itself being cancelled
            _pass_warnings(lane_ctx, ctx)
            # Transient (worth another try) only if it was waiting for lookups, not running its own code.
            waiting = call.waiting > 0  # read before the cancellation unwinds them
            call.abandoned = True
            if not self.loop.is_closed():
                future.cancel()
            if not isinstance(exc, TimeoutError):
                raise
            if not waiting:  # slow DNS is no fault of the detector's
                self.timeouts += 1
                if self.timeouts >= QUARANTINE_AFTER and not self.quarantined:
                    self.quarantine(f"timed out {self.timeouts} times in a row; restart the agent to retry")
            return None, f"timed out after {timeout:g}s", waiting
        _pass_warnings(lane_ctx, ctx)
        self.timeouts = 0
        return (*outcome, False)

    def _settle(self, waiter: asyncio.Future[Any], done: concurrent.futures.Future[Any]) -> None:
        """Hand a lane's result to the main loop (called on the lane's thread)."""
        if done.cancelled():
            return

        def settle() -> None:
            if waiter.done():
                return
            error = done.exception()
            if error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(done.result())

        try:
            self.main.call_soon_threadsafe(settle)
        except RuntimeError:  # the main loop has closed: nobody is waiting any more
            pass

    def quarantine(self, reason: str) -> None:
        self.quarantined = reason
        log.error("detector.quarantined", detector=self.name, reason=reason)
        self.stop()

    def stop(self) -> None:
        """Ask the lane's loop to stop; interrupt its thread if it does not (main loop only)."""
        if self.stopping is not None:
            return
        if not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self.loop.stop)
            except RuntimeError:  # closed in the meantime
                pass
        self.stopping = self.main.create_task(self._end_thread())

    async def _end_thread(self) -> None:
        if await self._joined():
            return
        for _ in range(STOP_ATTEMPTS):
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread.ident or 0), ctypes.py_object(DetectorStuck))
            if await self._joined():
                log.info("detector.thread_interrupted", detector=self.name)
                return
        log.warning("detector.thread_left", detector=self.name, reason="blocked in native code, cannot be interrupted")

    async def _joined(self) -> bool:
        deadline = time.monotonic() + STOP_GRACE
        while self._thread.is_alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return not self._thread.is_alive()


class LoopWatchdog:
    """Counts stalls of the main loop and names the detector running when one happens."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.stalls: Counter[str] = Counter()  # detector ("" if none was found) -> stalls
        self._codes: dict[Any, str] = {}
        self._main = threading.get_ident()
        self._beat = time.monotonic()
        self._suspect: str | None = None
        self._handle = loop.call_later(_TICK, self._tick)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="dijkwacht-loop-watchdog", daemon=True)
        self._thread.start()

    def watch(self, detectors: Iterable[Detector]) -> None:
        self._codes = {code: d.name for d in detectors if (code := getattr(type(d).detect, "__code__", None)) is not None}

    def _tick(self) -> None:
        now = time.monotonic()
        lag = now - self._beat - _TICK
        if lag > STALL:
            detector = self._suspect or ""
            self.stalls[detector] += 1
            # Named, it is a detector to fix; unnamed, most likely a busy machine.
            (log.warning if detector else log.info)("loop.stalled", seconds=round(lag, 2), detector=detector or None)
        self._suspect = None
        self._beat = now
        self._handle = self.loop.call_later(_TICK, self._tick)

    def _watch(self) -> None:
        while not self._stop.wait(_TICK):
            if self._suspect is None and time.monotonic() - self._beat > _TICK + STALL:
                self._suspect = self._blame()

    def _blame(self) -> str:
        frame = sys._current_frames().get(self._main)
        while frame is not None:
            name = self._codes.get(frame.f_code)
            if name is not None:
                return name
            frame = frame.f_back
        return ""

    def close(self) -> None:
        self._stop.set()
        self._handle.cancel()


class Isolation:
    """Lanes of the third-party detectors and the main loop's watchdog, for one process.

    A daemon keeps one across reloads, so a quarantined detector stays quarantined (its code
    cannot be re-imported without a restart anyway).
    """

    def __init__(self) -> None:
        self.main = asyncio.get_running_loop()
        self.lanes: dict[str, Lane] = {}
        self.watchdog = LoopWatchdog(self.main)

    def lane(self, name: str) -> Lane:
        lane = self.lanes.get(name)
        if lane is None:
            lane = self.lanes[name] = Lane(name, self.main)
        return lane

    @property
    def quarantined(self) -> dict[str, str]:
        return {name: lane.quarantined for name, lane in self.lanes.items() if lane.quarantined}

    async def close(self) -> None:
        """Stop every lane; wait for their threads, at most (1 + STOP_ATTEMPTS) * STOP_GRACE."""
        self.watchdog.close()
        for lane in self.lanes.values():
            lane.stop()
        stopping = [lane.stopping for lane in self.lanes.values() if lane.stopping is not None]
        if stopping:
            await asyncio.wait(stopping)
