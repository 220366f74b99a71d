"""The daemon: scheduled scans of every target, state, reloads and a clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import logs
from ..budget import Budget
from ..config import Config
from ..errors import DijkwachtError, one_line
from ..asn import COMBINED, FEED as ASN_FEED
from ..figures import counted
from ..ipranges import RangeFile
from ..isolation import Isolation
from ..rangefeeds import FEEDS
from ..runtime import Data, Runtime, build_runtime, load_config_with_plugins
from ..scanner import Dependency, TargetResult
from ..shard import Shard
from ..state import Change, StateStore
from ..targets import Target
from .metrics import Snapshot, StateCollector, TargetRenderer, TargetView, change_kind
from .schedule import Schedule, next_due

log = structlog.get_logger()


def _newest_mtime(paths) -> float:
    times = []
    for path in paths:
        try:
            times.append(Path(path).stat().st_mtime)
        except OSError:  # e.g. the built-in catalog inside a zipped package
            continue
    return max(times, default=0.0)


PROBE_TIMEOUT = 60.0
PROBE_QUEUE = 4  # probes that may wait for a slot, per slot; more are turned away at once


class ProbeRefused(Exception):
    """/probe is at its limit (or the agent is stopping): answered 503 at once."""


class Faults(Collector):
    """Errors that are the agent's own, not a target's: counted so that an alert can see them."""

    WHERE = ("http", "reload", "scan")

    def __init__(self) -> None:
        self.internal: Counter[str] = Counter({where: 0 for where in self.WHERE})
        self.state_writes = 0

    def collect(self) -> Iterator[Metric]:
        internal = CounterMetricFamily("dijkwacht_internal_errors", "Unexpected errors caught at an entry point (a bug or an unforeseen fault), by where: http, reload, scan.", labels=["where"])
        for where, count in sorted(self.internal.items()):
            internal.add_metric([where], count)
        yield internal
        yield CounterMetricFamily("dijkwacht_state_write_errors", "Scan results that could not be written to the state database (e.g. a full disk); such a scan is not counted.", value=self.state_writes)


def describe(exc: BaseException) -> str:
    """An unexpected exception as one line: its type and message."""
    return f"{type(exc).__name__}: {one_line(str(exc))}"


class Daemon:
    def __init__(self, config_path: Path | str, *, clock=time.time, shard: Shard | None = None, log_level: str | None = None, state_path: str | None = None, strict_plugins: bool = False) -> None:
        self.config_path = str(config_path)
        self.clock = clock
        self.shard_override = shard  # --shard wins over [daemon] shard
        self.log_level_override = log_level  # --log-level wins over [agent] log_level
        self.state_path_override = state_path  # --state-path wins over [daemon] state_path
        self.strict_plugins = strict_plugins  # --strict-plugins: a plugin that cannot be used is fatal
        self.snapshot = Snapshot()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StateCollector(self.snapshot))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.per_target = TargetRenderer(self.snapshot)
        self.faults = Faults()
        self.registry.register(self.faults)
        self.dns_stats: Counter[str] = self.snapshot.dns_queries
        self.schedule = Schedule()
        self.config: Config | None = None
        self.data: Data | None = None
        self.runtime: Runtime | None = None
        self.isolation: Isolation | None = None  # third-party detectors' lanes, for the agent's life
        self.probe_runtime: Runtime | None = None  # /probe's own DNS engine, budget and cache
        self.state: StateStore | None = None
        self.targets: dict = {}
        self.ready = False
        # Other parts reloaded with the configuration (the web config): each validates its
        # part of a new configuration and returns how to apply it, which happens only if every
        # part is valid.
        self.reload_hooks: list[Callable[[Config], Awaitable[Callable[[], None]]]] = []
        # The files those parts read (the web config and the certificates it names), watched
        # with the daemon's own: see watch_also.
        self._other_inputs: list[Callable[[], Iterable[str]]] = []
        self._budget: Budget | None = None
        self._probe_budget: Budget | None = None
        self._probes_waiting = 0
        self._users: Counter[Runtime] = Counter()  # scans and probes using each runtime
        self._released = asyncio.Condition()
        self._failed_writes = 0
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._scheduler: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._seen: tuple = ()  # fingerprint of the inputs at the last (re)load

    # ---- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Load everything or fail (at start an invalid config is fatal), then start scanning."""
        self._seen = self.fingerprint()
        config, data = load_config_with_plugins(self.config_path, strict=self.strict_plugins)
        daemon = config.daemon
        state_path = self.state_path_override or daemon.state_path
        self.state = StateStore(state_path, daemon.confirmations, config.agent.count_inferred, on_corrupt=daemon.on_corrupt_state)
        try:
            if self.state.moved_aside:
                log.warning("state.corrupt_moved_aside", message=f"state database is corrupt: moved aside to {self.state.moved_aside}, starting a new history", state=state_path)
            self.isolation = Isolation()
            self.snapshot.loop_stalls = self.isolation.watchdog.stalls
            restored = bool(self.state.scans())
            self._apply(config, data)
        except BaseException:
            self.state.close()
            raise
        if restored or not self.targets:
            self._background(self._ready_when_rendered())
        shard = self.shard_override or daemon.shard
        self._seen = self.fingerprint()  # now with the files the config names
        log.info("agent.started", targets=len(self.targets), configured=len(config.targets), shard=str(shard) if shard else None, state=state_path, restored=restored)
        self._scheduler = asyncio.create_task(self._schedule_loop())

    async def stop(self, grace: float = 3.0) -> None:
        """Stop scheduling, let in-flight scans finish for up to `grace` seconds, close."""
        self._stopping.set()
        self._wake.set()
        if self._scheduler is not None:
            await self._scheduler
        pending = [t for t in self._inflight.values() if not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await asyncio.gather(*self._closing, return_exceptions=True)
        for runtime in (self.runtime, self.probe_runtime):
            if runtime is not None:
                await runtime.close()
        if self.isolation is not None:
            await self.isolation.close()
        if self.state is not None:
            self.state.close()
        log.info("agent.stopped")

    async def reload(self) -> tuple[bool, str]:
        """Reload config, plugins, catalog and IP ranges; keep the old ones if anything is invalid.

        Whatever goes wrong (an invalid file, an unreadable one, a bug) the old configuration
        stays, the failure is one log line and `dijkwacht_config_last_reload_successful` is 0.
        """
        async with self._reload_lock:
            try:
                self._seen = await asyncio.to_thread(self.fingerprint)
                config, data = await asyncio.to_thread(load_config_with_plugins, self.config_path, strict=self.strict_plugins)
                commits = [await hook(config) for hook in self.reload_hooks]
                self._apply(config, data)
                for commit in commits:
                    commit()
                self._seen = await asyncio.to_thread(self.fingerprint)  # the new config may name other files
            except DijkwachtError as exc:
                return self._reload_failed(str(exc))
            except Exception as exc:
                self.faults.internal["reload"] += 1
                return self._reload_failed(describe(exc))
            log.info("config.reloaded", targets=len(self.targets))
            return True, "reloaded"

    def _reload_failed(self, message: str) -> tuple[bool, str]:
        self.snapshot.reload_ok = False
        log.error("config.reload_failed", error=message, kept="previous configuration")
        return False, message

    def _apply(self, config: Config, data: Data) -> None:
        """Make `config` current. Everything that can fail comes first (building the scan's
        parts, writing ownership changes); only then is anything replaced."""
        assert self.state is not None
        now = self.clock()
        home = config.agent.home_codes
        runtime = build_runtime(config.agent, data, config.detectors, dns_stats=self.dns_stats, isolation=self.isolation)
        try:
            probe_settings = replace(config.agent, max_inflight=config.daemon.probe_max_inflight)
            probe_runtime = build_runtime(probe_settings, data, config.detectors, dns_stats=self.dns_stats, isolation=self.isolation)
        except BaseException:
            self._background(runtime.close())
            raise
        shard = self.shard_override or config.daemon.shard
        targets = {t.domain: t for t in config.targets if shard is None or shard.owns(t.domain)}
        # Forget the current state (not the history) of every target this agent no longer
        # scans -- removed, or moved to another shard -- before anything reads it: a target
        # that comes back, or arrives from another shard, starts with a baseline, never a change.
        removed = [d for d in {*self.snapshot.views, *self.state.scans(), *self.state.baselined()} if d not in targets]
        counting = self.state.count_inferred
        self.state.count_inferred = config.agent.count_inferred
        try:
            self.state.forget(removed)
            # Parent changes first: no scan with the new catalog may absorb one silently.
            owned = self.state.apply_ownership(data.catalog, home, now=now)
        except BaseException:
            self.state.count_inferred = counting
            self._background(runtime.close())
            self._background(probe_runtime.close())
            raise
        logs.configure(self.log_level_override or config.agent.log_level)
        old = (self.runtime, self.probe_runtime)
        self.runtime, self.probe_runtime = runtime, probe_runtime
        self.config, self.data = config, data
        self.state.confirmations = config.daemon.confirmations
        self._budget = Budget(config.agent.concurrency)  # scans in flight finish on the old one
        self._probe_budget = Budget(config.daemon.probe_concurrency)
        self.snapshot.home = home  # the kind of each change below is judged against it
        for change in owned:
            self._changed(change)
        self.targets = targets
        for domain in removed:
            self.schedule.remove(domain)

        stored = self.state.dependencies()
        baselined = self.state.baselined()
        scans = self.state.scans()
        interval = config.daemon.interval
        views = {}
        for domain, target in self.targets.items():
            record = scans.get(domain)
            deps = {c: [] for c in baselined.get(domain, ())} | self._counted(stored.get(domain, {}))
            views[domain] = TargetView(domain, dict(target.labels), deps, record.last_success if record else None, dict(record.errors) if record else {}, record is not None)
            if domain not in self.schedule and domain not in self._inflight:
                due = now if record is None else max(next_due(domain, record.last_attempt, interval), next_due(domain, now - interval / 2, interval))
                self.schedule.set(domain, due)
        s = self.snapshot
        s.views = views
        s.label_keys = tuple(sorted({k for t in self.targets.values() for k in t.labels}))
        s.home = home
        s.detectors = tuple(d.name for d in self.runtime.detectors)
        s.plugins = tuple(data.host.records)
        s.detector_plugin = data.host.detector_owner
        s.categories = tuple(sorted({c for d in self.runtime.detectors for c in d.categories}))
        s.interval = interval
        s.confirmations = config.daemon.confirmations
        s.shard = shard or Shard(0, 1)
        s.last_changes = {k: c for k, c in self.state.last_changes().items() if k[0] in self.targets}
        s.catalog_loaded = now
        s.catalog_updated = _newest_mtime(data.catalog.sources)
        s.catalog_providers = len(data.catalog.providers)
        s.range_files = self._range_files(config, data)
        s.reload_ok = True
        s.reload_success_time = now
        self._report_problems(config)
        for previous in old:
            if previous is not None:
                self._background(self._close_when_idle(previous))
        self._background(self.per_target.prepare_all())
        self._wake.set()

    def _report_problems(self, config: Config, limit: int = 20) -> None:
        """Bad or repeated targets-file lines: logged (the first `limit`), not silently dropped."""
        for problem in config.problems[:limit]:
            log.warning("target.invalid", file=problem.path, line=problem.line, error=problem.message)
        if len(config.problems) > limit:
            log.warning("target.invalid_more", count=len(config.problems) - limit, file=config.problems[limit].path)

    def _range_files(self, config: Config, data: Data) -> tuple[RangeFile, ...]:
        """The loaded range files, plus a dated-never (0) empty entry for every known feed whose
        file is missing or empty, so the stale-data alert fires instead of a silent gap."""
        files = {f.provider: f for f in data.ranges.files}
        missing = [p for p in (*FEEDS, ASN_FEED) if p not in files or files[p].prefixes_v4 + files[p].prefixes_v6 == 0]
        if missing:
            log.warning("ip_ranges.missing", data_dir=config.agent.data_dir or None, providers=",".join(missing), effect="only hostname evidence for their addresses")
        data_dir = Path(config.agent.data_dir)
        for provider in missing:
            files[provider] = RangeFile(provider, data_dir / (COMBINED if provider == ASN_FEED else f"{provider}.txt"), 0, 0, 0.0)
        return tuple(files[p] for p in sorted(files))

    # ---- reload on change ------------------------------------------------------------------

    def watch_also(self, files: Callable[[], Iterable[str]]) -> None:
        """Watch the files another reloaded part reads now (`files()` is asked at every check)."""
        self._other_inputs.append(files)
        self._seen = self.fingerprint()

    def _inputs(self) -> list[Path]:
        """The files a reload reads: the config, targets files, catalogs, IP range files, and
        those of the other parts (the web config and its certificate, key and CA files)."""
        paths = [Path(self.config_path)]
        for files in self._other_inputs:
            paths += [Path(p) for p in files()]
        if self.config is not None:
            agent = self.config.agent
            paths += [Path(p) for p in (agent.targets_file, *agent.catalog) if p]
            # data_dir: the range files and the IP-to-AS table (ip2asn-*.tsv[.gz])
            for directory, suffixes in ((agent.targets_dir, (".toml", ".txt")), (agent.data_dir, (".txt", ".tsv", ".gz"))):
                if directory and os.path.isdir(directory):
                    paths += [p for p in sorted(Path(directory).iterdir()) if p.suffix in suffixes and not p.name.startswith(".")]
        return paths

    def fingerprint(self) -> tuple:
        """What changes when an input is edited or replaced: (path, inode, size, mtime) of each.
        A mounted ConfigMap is replaced by swapping a symlink, which changes the inode."""
        out = []
        for path in self._inputs():
            try:
                st = path.stat()
                out.append((str(path), st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                out.append((str(path), None))
        return tuple(out)

    async def watch(self, every: float) -> None:
        """Reload when an input changes: the config file, targets, catalogs, IP range data, the
        web config or its certificates (a rotated Kubernetes Secret: its symlink swap changes the inode).
        A reload that fails keeps the old configuration and is retried only after the next change."""
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), every)
                return
            except TimeoutError:
                pass
            try:
                changed = await asyncio.to_thread(self.fingerprint) != self._seen
            except Exception as exc:  # (an unreadable directory) never stop watching
                self.faults.internal["reload"] += 1
                log.error("config.watch_failed", error=describe(exc))
                continue
            if changed:
                log.info("config.changed", action="reload")
                await self.reload()

    async def _ready_when_rendered(self) -> None:
        """A restored state is served at once -- as soon as its metrics are rendered (~1 s for 16,500)."""
        await self.per_target.prepare_all()
        self.ready = True

    def background(self, coroutine) -> None:
        """Run `coroutine` as a task the daemon keeps (and awaits when it stops)."""
        self._background(coroutine)

    def _background(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @contextlib.contextmanager
    def _using(self, runtime: Runtime) -> Iterator[Runtime]:
        """Mark `runtime` in use, so that a reload does not close it under a scan or probe."""
        self._users[runtime] += 1
        try:
            yield runtime
        finally:
            self._users[runtime] -= 1
            if not self._users[runtime]:
                del self._users[runtime]
                self._background(self._notify_released())

    async def _notify_released(self) -> None:
        async with self._released:
            self._released.notify_all()

    async def _close_when_idle(self, runtime: Runtime) -> None:
        async with self._released:
            await self._released.wait_for(lambda: runtime not in self._users)
        await runtime.close()

    # ---- scanning --------------------------------------------------------------------------

    async def _schedule_loop(self) -> None:
        while not self._stopping.is_set():
            for domain in self.schedule.pop_due(self.clock()):
                if domain in self.targets and domain not in self._inflight:
                    self._inflight[domain] = asyncio.create_task(self._scan(domain))
            upcoming = self.schedule.next_time()
            wait = 60.0 if upcoming is None else min(60.0, max(0.0, upcoming - self.clock()))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

    async def _scan(self, domain: str) -> None:
        try:
            assert self._budget is not None and self.runtime is not None
            async with self._budget:
                if self._stopping.is_set():
                    return
                with self._using(self.runtime) as runtime:
                    result = await runtime.scanner.scan(self.targets[domain])
            if domain in self.targets:
                self._fold(result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never let one target stop the agent
            self.faults.internal["scan"] += 1
            log.error("scan.failed", target=domain, error=describe(exc))
        finally:
            self._inflight.pop(domain, None)
            if domain in self.targets and not self._stopping.is_set() and self.config is not None:
                self.schedule.set(domain, next_due(domain, self.clock(), self.config.daemon.interval))
                self._wake.set()

    def _fold(self, result: TargetResult) -> None:
        """Record a result in the state and the snapshot the metrics read."""
        assert self.state is not None
        now = self.clock()
        domain = result.target.domain
        self.snapshot.observe_duration(result.duration)
        try:
            changes = self.state.record(result, self.snapshot.home, now=now)
        except sqlite3.Error as exc:
            self._write_failed(exc)
            return  # rolled back whole: as if this scan had not happened
        if self._failed_writes:
            log.warning("state.write_recovered", failed=self._failed_writes)
            self._failed_writes = 0
        for change in changes:
            self._changed(change)
        errors: Counter[str] = Counter(e.detector for e in result.errors)
        self.snapshot.detector_errors.update(errors)
        if self.isolation is not None:
            self.snapshot.quarantined = self.isolation.quarantined
        view = self.snapshot.views.get(domain)
        if view is None:
            return
        # Categories known so far, plus those this scan completed; a category whose lookups
        # failed before it ever had a baseline stays absent (unknown), not "0 foreign".
        known = {c: [] for c in (*view.deps, *(result.scanned - result.incomplete))}
        view.deps = known | self._counted(self.state.stored(domain))
        view.errors = dict(errors)
        view.scanned = True
        if not result.errors:
            view.last_success = now
        view.rendered = None
        self.per_target.prepare(view)
        if result.errors:
            log.info("scan.errors", target=domain, errors=[f"{e.detector}: {e.message}" for e in result.errors][:5])
        if not self.ready and all(v.scanned for v in self.snapshot.views.values()):
            self.ready = True
            log.info("agent.ready", reason="first full pass done")

    def _write_failed(self, exc: sqlite3.Error) -> None:
        """Count every failed write; log the first of a run of them (a full disk fails every
        scan: one line, then one more when writes succeed again)."""
        self.faults.state_writes += 1
        if not self._failed_writes:
            log.error("state.write_failed", error=one_line(str(exc)), state=self.state.path if self.state else "", effect="scan results are not recorded until writes succeed again")
        self._failed_writes += 1

    async def probe(self, domain: str) -> TargetResult:
        """One on-demand scan for /probe, on its own runtime (DNS budget, cache) and within its
        own concurrency limit, so that probes cannot starve the scheduled scans."""
        budget = self._probe_budget
        assert budget is not None and self.probe_runtime is not None and self.config is not None
        if self._stopping.is_set():
            raise ProbeRefused("the agent is stopping")
        if self._probes_waiting >= self.config.daemon.probe_concurrency * (PROBE_QUEUE + 1):
            raise ProbeRefused(f"too many probes in progress (limit [daemon] probe_concurrency = {self.config.daemon.probe_concurrency})")
        self._probes_waiting += 1
        try:
            async with budget:
                with self._using(self.probe_runtime) as runtime:  # the current one, after the wait
                    return await asyncio.wait_for(runtime.scanner.scan(Target(domain)), PROBE_TIMEOUT)
        finally:
            self._probes_waiting -= 1

    def _counted(self, deps: dict[str, list[Dependency]]) -> dict[str, list[Dependency]]:
        """The stored dependencies the metrics show: inferred ones only with `count_inferred`."""
        assert self.config is not None
        return {category: counted(found, self.config.agent.count_inferred) for category, found in deps.items()}

    def metrics(self) -> bytes:
        """The /metrics page: per-target families, then the agent-wide ones."""
        return self.per_target.render() + generate_latest(self.registry)

    def _changed(self, change: Change) -> None:
        kind = change_kind(change, self.snapshot.home)
        self.snapshot.changes_total[(change.category, kind, change.reason)] += 1
        self.snapshot.last_changes[(change.target, change.category)] = change
        log.warning(
            "dependency.changed",
            target=change.target,
            category=change.category,
            reason=change.reason,
            from_providers=",".join(change.from_providers),
            to_providers=",".join(change.to_providers),
            to_jurisdiction=change.to_jurisdiction,
            to_foreign=change.to_foreign,
            kind=kind,
        )
