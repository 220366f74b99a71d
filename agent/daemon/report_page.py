"""`/report` of the running agent: the same HTML as `dijkwacht report`, from the agent's state.

The state changes with every scan (16,500 targets every 15 minutes is 18 scans a second), so
the page is not rendered per change but kept for MAX_AGE seconds: a request gets the kept page
at once and, when it is older than that, a fresh one is rendered in a thread for the next
requests. The first page is rendered as soon as the agent is ready, so no request waits for a
render unless it comes before that, or right after a reload. One render runs at a time.

The page is made from the stored dependencies and history, read as `report --state` reads them
(inputs.read_state): inferred dependencies, which the metrics leave out, are listed and marked
"not counted" on both. The thread reads the database through its own read-only connection
(SQLite's WAL gives it one consistent moment while scans write), so neither the reading nor the
16,500 results it makes hold up the event loop; only the list of targets is taken there.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from ..report import build, catalog_info, ip_info
from ..report.html import render_html
from ..report.inputs import Loaded, apply_home, read_state

if TYPE_CHECKING:
    from .agent import Daemon

log = structlog.get_logger()

MAX_AGE = 60.0
TITLE = "Digital sovereignty report"
HISTORY_DAYS = 30


class LiveReport:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self._page: bytes | None = None
        self._rendered = 0.0
        self._key: tuple[Any, ...] | None = None
        self._render_task: asyncio.Task[bool] | None = None
        self._warming: asyncio.Task[None] | None = None

    def attach(self, app: web.Application) -> None:
        """Render the first page in the background once the agent is ready (from app start to cleanup)."""

        async def start(_: web.Application) -> None:
            self._warming = asyncio.create_task(self._warm())

        async def stop(_: web.Application) -> None:
            for task in (self._warming, self._render_task):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

        app.on_startup.append(start)
        app.on_cleanup.append(stop)

    async def _warm(self) -> None:
        while not self.daemon.ready:
            await asyncio.sleep(0.5)
        await asyncio.shield(self._renewal())

    def _state_key(self) -> tuple[Any, ...]:
        """What makes a kept page wrong rather than old: a reload, the end of the first pass."""
        return (self.daemon.ready, self.daemon.snapshot.reload_success_time)

    def _renewal(self) -> asyncio.Task[bool]:
        """The render in progress, or a new one."""
        if self._render_task is None or self._render_task.done():
            self._render_task = asyncio.create_task(self._render())
        return self._render_task

    async def page(self) -> bytes:
        while self._page is None or self._key != self._state_key():
            # shielded: a client that goes away does not cancel the render others wait for
            if not await asyncio.shield(self._renewal()):
                raise web.HTTPInternalServerError(text="the report could not be rendered (see the agent's log)\n")
        if time.monotonic() - self._rendered > MAX_AGE:
            self._renewal()
        return self._page

    async def _render(self) -> bool:
        key = self._state_key()
        started = time.monotonic()
        try:
            page = await asyncio.to_thread(_render, *self._snapshot())
        except Exception as exc:  # the agent keeps scanning; the kept page (if any) stays
            log.exception("report.render_failed", error=str(exc))
            return False
        self._page, self._rendered, self._key = page, started, key
        return True

    def _snapshot(self) -> tuple[str, dict[str, dict[str, str]], tuple[float, float] | None, dict[str, Any]]:
        """What the report is made from, taken on the event loop: the state database, the
        targets with their labels, when they were last scanned completely, the options."""
        daemon = self.daemon
        snapshot = daemon.snapshot
        assert daemon.config is not None and daemon.data is not None and daemon.state is not None
        now = time.time()
        targets = {v.domain: v.labels for v in snapshot.views.values()}
        successes = [v.last_success for v in snapshot.views.values() if v.last_success is not None]
        agent = daemon.config.agent
        options = {"home": agent.home, "home_codes": snapshot.home, "count_inferred": agent.count_inferred,
                   "group_by": snapshot.label_keys, "since": now - HISTORY_DAYS * 86400, "catalog": catalog_info(daemon.data.catalog),
                   "ip_data": ip_info(snapshot.range_files), "now": now}
        return daemon.state.path, targets, (min(successes), max(successes)) if successes else None, options


def _render(state: str, targets: dict[str, dict[str, str]], scanned: tuple[float, float] | None, options: dict[str, Any]) -> bytes:
    stored = read_state(state, targets=targets, since=options["since"])
    loaded = Loaded(stored.results, "agent", "", scanned, stored.changes)
    apply_home(loaded.results, options["home_codes"])
    report = build(loaded, title=TITLE, **options)
    return render_html(report).encode("utf-8")

