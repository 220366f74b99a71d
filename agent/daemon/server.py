"""The agent's HTTP server: /metrics, health, readiness, reload, /probe and a landing page."""

from __future__ import annotations

import html
import time

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .. import __version__
from ..figures import counted
from ..report.html import CSP
from ..targets import InvalidTarget, normalise_domain
from .agent import Daemon, ProbeRefused, describe
from .metrics import ProbeCollector, TargetView
from .report_page import LiveReport
from .webconfig import WebConfig

SHUTDOWN_GRACE = 1.0  # seconds in-flight requests (a /probe) get when the agent stops (aiohttp may take twice that)

log = structlog.get_logger()


def errors_middleware(daemon: Daemon):
    """A handler's unexpected exception: one log line, a counted error, a plain 500."""

    @web.middleware
    async def errors(request: web.Request, handler):
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as exc:
            daemon.faults.internal["http"] += 1
            log.error("http.error", path=request.path, error=describe(exc))
            return web.Response(status=500, text="internal error (logged)\n")

    return errors


def make_app(daemon: Daemon, web_config: WebConfig, *, lifecycle: bool = False) -> web.Application:
    # The liveness probe stays open (kubelet, systemd, container HEALTHCHECK); with basic auth
    # configured, everything else -- metrics, probe, readiness, reload -- needs it.
    app = web.Application(middlewares=[errors_middleware(daemon), web_config.middleware(open_paths=frozenset({"/-/healthy"}))])

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=daemon.metrics(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthy(_: web.Request) -> web.Response:
        return web.Response(text="Healthy\n")

    async def ready(_: web.Request) -> web.Response:
        if daemon.ready:
            return web.Response(text="Ready\n")
        return web.Response(status=503, text="Not ready: first scan pass in progress\n")

    async def reload(_: web.Request) -> web.Response:
        if not lifecycle:
            return web.Response(status=403, text="Lifecycle API is not enabled (start with --web.enable-lifecycle).\n")
        ok, message = await daemon.reload()
        return web.Response(status=200 if ok else 500, text=message + "\n")

    async def probe(request: web.Request) -> web.Response:
        raw = request.query.get("target", "")
        try:
            domain = normalise_domain(raw)
        except InvalidTarget as exc:
            return web.Response(status=400, text=f"target: {exc}\n")
        started = time.perf_counter()
        try:
            result = await daemon.probe(domain)
        except ProbeRefused as exc:
            return web.Response(status=503, text=f"{exc}\n", headers={"Retry-After": "5"})
        except TimeoutError:
            return web.Response(status=504, text="probe timed out\n")
        errors: dict[str, int] = {}
        for error in result.errors:
            errors[error.detector] = errors.get(error.detector, 0) + 1
        deps: dict = {c: [] for c in result.scanned}
        assert daemon.config is not None
        for dep in counted(result.dependencies, daemon.config.agent.count_inferred):
            deps.setdefault(dep.category, []).append(dep)
        view = TargetView(domain, {}, deps, time.time() if not result.errors else None, errors, True)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ProbeCollector(view, daemon.snapshot.home, daemon.snapshot.detectors, time.perf_counter() - started))
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    live_report = LiveReport(daemon)
    live_report.attach(app)

    async def report(_: web.Request) -> web.Response:
        page = await live_report.page()
        return web.Response(body=page, content_type="text/html", charset="utf-8", headers={"Content-Security-Policy": CSP})

    async def landing(_: web.Request) -> web.Response:
        targets = len(daemon.snapshot.views)
        state = "ready" if daemon.ready else "first scan pass in progress"
        page = f"""<!doctype html><html><head><title>dijkwacht</title></head><body>
<h1>dijkwacht {html.escape(__version__)}</h1>
<p>Watching {targets} targets ({html.escape(state)}).</p>
<ul><li><a href="report">Sovereignty report</a></li><li><a href="metrics">Metrics</a></li><li><a href="-/healthy">Health</a></li><li><a href="-/ready">Readiness</a></li>
<li><form action="probe">Probe one domain: <input name="target" placeholder="example.nl"> <button>Scan</button></form></li></ul>
</body></html>"""
        return web.Response(text=page, content_type="text/html")

    app.router.add_get("/", landing)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    app.router.add_put("/-/reload", reload)
    app.router.add_get("/probe", probe)
    app.router.add_get("/report", report)
    return app


async def serve(daemon: Daemon, web_config: WebConfig, listen: str, *, lifecycle: bool = False) -> web.AppRunner:
    # ":9849" (empty host) binds every address of both families, as Prometheus' listen address does.
    host, _, port = listen.rpartition(":")
    runner = web.AppRunner(make_app(daemon, web_config, lifecycle=lifecycle), access_log=None, shutdown_timeout=SHUTDOWN_GRACE)
    await runner.setup()
    # A backlog like Go's (the kernel's somaxconn): with asyncio's 128, a burst of clients
    # overflows it and waits out TCP's SYN retries (1, 3, 7... s) before it is even answered.
    try:
        site = web.TCPSite(runner, host.strip("[]") or None, int(port), ssl_context=web_config.ssl_context, backlog=4096)
        await site.start()
    except BaseException:  # (a taken port) the app has started: stop its tasks before the state closes
        await runner.cleanup()
        raise
    return runner
