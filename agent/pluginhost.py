"""Loading plugins: discovery, checks, and quarantine of the ones that cannot be used.

Nothing is loaded at import time: `make_plugin_manager()` is called by the CLI (and by tests,
which get a fresh manager each time), so plugin discovery is explicit and repeatable.

Every plugin is checked once, here, when it is loaded: its import, the API range it declares,
its hooks (all known to dijkwacht), what `dijkwacht_detectors()` returns (Detector classes with
a name, categories, settings, an async `detect`), that no detector name is taken already, and
that its catalog files load. A plugin failing any check is quarantined -- skipped, with its
reason recorded for `dijkwacht plugins`, the log and `dijkwacht_plugin_info` -- and everything
else runs; in strict mode (`--strict-plugins`, `[plugins] strict`) the first failure is fatal
instead. Built-in plugins (entry points of dijkwacht's own distribution) are loaded first, so
their entry-point and detector names can never be taken over by a third party.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy
import structlog

from . import hookspecs
from .catalog import load_catalog
from .detector import Detector
from .errors import DijkwachtError, describe
from .hookspecs import API_VERSION

ENTRY_POINT_GROUP = "dijkwacht"
AUTOLOAD_ENV = "DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD"
OWN_DIST = "dijkwacht"
API_ATTRIBUTE = "DIJKWACHT_API"

LOADED, FAILED, DISABLED = "loaded", "failed", "disabled"

log = structlog.get_logger()


class PluginError(DijkwachtError):
    """A plugin cannot be used as given (fatal in strict mode; otherwise it is quarantined)."""


@dataclass
class PluginRecord:
    """One plugin as loading found it: what `dijkwacht plugins` shows."""

    name: str  # the entry-point name (or the name a plugin object was registered under)
    distribution: str = ""
    version: str = ""
    builtin: bool = False
    status: str = LOADED  # loaded | failed | disabled
    error: str = ""  # why it failed or is disabled
    api: str = ""  # the API range it declares, "" if none
    detectors: list[type[Detector]] = field(default_factory=list)
    catalog_files: list[Path] = field(default_factory=list)


@dataclass
class PluginHost:
    """A plugin manager plus the record of every plugin found."""

    pm: pluggy.PluginManager
    records: list[PluginRecord] = field(default_factory=list)
    strict: bool = False

    def detector_classes(self) -> list[type[Detector]]:
        """The loaded plugins' detector classes, sorted by name (names are unique)."""
        return sorted((cls for r in self.records if r.status == LOADED for cls in r.detectors), key=lambda c: c.name)

    def catalog_files(self) -> list[Path]:
        return [path for r in self.records if r.status == LOADED for path in r.catalog_files]

    @property
    def detector_owner(self) -> dict[str, str]:
        """Detector name -> plugin name, for loaded plugins."""
        return {cls.name: r.name for r in self.records if r.status == LOADED for cls in r.detectors}

    @property
    def builtin_detectors(self) -> frozenset[str]:
        return frozenset(cls.name for r in self.records if r.status == LOADED and r.builtin for cls in r.detectors)

    @property
    def failed(self) -> dict[str, str]:
        """Plugin name -> reason, for plugins that failed to load."""
        return {r.name: r.error for r in self.records if r.status == FAILED}

    @property
    def unloaded(self) -> dict[str, str]:
        """Plugin name -> reason, for plugins that failed or are disabled."""
        return {r.name: r.error for r in self.records if r.status != LOADED}

    def _fail(self, record: PluginRecord, error: str) -> None:
        if self.strict:
            raise PluginError(f"plugin '{record.name}'{_from(record)}: {error}")
        record.status, record.error = FAILED, error
        log.error("plugin.failed", plugin=record.name, distribution=record.distribution or None, error=error)

    def _add(self, plugin: object, record: PluginRecord) -> None:
        """Check and register one plugin object, or record why it cannot be used."""
        self.records.append(record)
        declared = getattr(plugin, API_ATTRIBUTE, None)
        if declared is not None:
            record.api = str(declared)
            problem = api_problem(declared)
            if problem:
                return self._fail(record, problem)
        try:
            self.pm.register(plugin, name=record.name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            return self._fail(record, f"cannot be registered: {exc}")
        unknown = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or () if not caller.has_spec())
        if unknown:
            self.pm.unregister(plugin)
            known = ", ".join(name for name in dir(hookspecs) if name.startswith("dijkwacht_"))
            return self._fail(record, f"implements hooks dijkwacht does not know: {', '.join(unknown)} (known: {known})")
        try:
            record.detectors = self._detectors(plugin, record)
            record.catalog_files = self._catalog_files(plugin)
        except PluginError as exc:
            record.detectors, record.catalog_files = [], []
            self.pm.unregister(plugin)
            return self._fail(record, str(exc))

    def _call(self, plugin: object, hook: str) -> Any:
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            if impl.plugin is plugin:
                try:
                    return impl.function()
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # SystemExit included: a plugin never ends the process
                    raise PluginError(f"{hook}() raised {describe(exc)}") from None
        return None

    def _detectors(self, plugin: object, record: PluginRecord) -> list[type[Detector]]:
        returned = self._call(plugin, "dijkwacht_detectors")
        if returned is None:
            return []
        if not isinstance(returned, (list, tuple)):
            raise PluginError(f"dijkwacht_detectors() returned {type(returned).__name__}; expected a list of Detector subclasses")
        taken = {cls.name: r for r in self.records if r.status == LOADED and r is not record for cls in r.detectors}
        classes = []
        for cls in returned:
            check_detector_class(cls)
            if cls.name in taken:
                owner = taken[cls.name]
                raise PluginError(f"detector name '{cls.name}' is taken by {'built-in ' if owner.builtin else ''}plugin '{owner.name}'{_from(owner)}")
            if cls.name in {c.name for c in classes}:
                raise PluginError(f"detector name '{cls.name}' is returned twice")
            classes.append(cls)
        return classes

    def _catalog_files(self, plugin: object) -> list[Path]:
        returned = self._call(plugin, "dijkwacht_catalog_files")
        if returned is None:
            return []
        if not isinstance(returned, (list, tuple)) or not all(isinstance(p, (str, os.PathLike)) for p in returned):
            raise PluginError(f"dijkwacht_catalog_files() returned {returned!r:.80}; expected a list of paths")
        files = [Path(p) for p in returned]
        try:  # on top of the built-in catalog, which plugin files may extend
            load_catalog(files)
        except DijkwachtError as exc:
            raise PluginError(f"catalog file: {exc}") from None
        except Exception as exc:  # a path the loader cannot take at all: still this plugin's failure
            raise PluginError(f"catalog file: {describe(exc)}") from None
        return files


def _from(record: PluginRecord) -> str:
    return f" (distribution {record.distribution})" if record.distribution else ""


_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def check_detector_class(cls: object) -> None:
    """Raise PluginError unless `cls` is a Detector subclass the core can run."""
    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        raise PluginError(f"dijkwacht_detectors() returned {cls!r:.80}; expected Detector subclasses")
    if not isinstance(cls.name, str) or not _NAME.match(cls.name):
        raise PluginError(f"detector {cls.__qualname__} needs a lowercase name ([a-z0-9_-])")
    categories = cls.categories
    if not isinstance(categories, tuple) or not categories or not all(isinstance(c, str) and _NAME.match(c) for c in categories):
        raise PluginError(f"detector '{cls.name}' must declare its categories as a tuple of lowercase names, not {categories!r:.60}")
    if not isinstance(cls.settings, Mapping) or not all(isinstance(k, str) for k in cls.settings):
        raise PluginError(f"detector '{cls.name}': settings must be a mapping of names to defaults")
    if not inspect.iscoroutinefunction(cls.detect):
        raise PluginError(f"detector '{cls.name}': detect() must be declared `async def`")


_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(\d+)(?:\.(\d+))?\s*$")
_COMPARE = {
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b, ">": lambda a, b: a > b, "<": lambda a, b: a < b,
}


def api_problem(declared: object, version: str = API_VERSION) -> str:
    """"" if `version` is inside the declared range (">=1.0,<2"), else why the plugin is refused."""
    if not isinstance(declared, str) or not declared.strip():
        return f"{API_ATTRIBUTE} must be a version range such as '>=1.0,<2', not {declared!r:.40}"
    current = tuple(int(x) for x in version.split("."))
    for clause in declared.split(","):
        match = _CLAUSE.match(clause)
        if not match:
            return f"{API_ATTRIBUTE} = {declared!r}: '{clause.strip()}' is not a clause such as '>=1.0' or '<2'"
        op, major, minor = match.groups()
        if not _COMPARE[op](current, (int(major), int(minor or 0))):
            return f"supports dijkwacht plugin API {declared}; this dijkwacht has API {version}"
    return ""


def make_plugin_manager(
    plugins: Iterable[ModuleType | object] = (),
    *,
    autoload: bool | None = None,
    disable: Collection[str] = (),
    strict: bool = False,
) -> PluginHost:
    """Load the entry-point plugins (built-ins first), then any plugin objects passed in.

    With autoload off (or `DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD` set), only dijkwacht's own entry
    points are loaded. Names in `disable` are not loaded at all. With `strict`, the first plugin
    that cannot be used raises PluginError; otherwise it is recorded as failed and skipped.
    """
    if autoload is None:
        autoload = not os.environ.get(AUTOLOAD_ENV)
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    host = PluginHost(pm, strict=strict)
    found = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (not _builtin(e), e.name, _dist(e)))
    for ep in found:
        dist = _dist(ep)
        record = PluginRecord(ep.name, dist, ep.dist.version if ep.dist else "", _builtin(ep))
        owner = next((r for r in host.records if r.name == ep.name), None)
        if owner is not None:
            host.records.append(record)
            host._fail(record, f"entry-point name '{ep.name}' is taken by {'built-in ' if owner.builtin else ''}plugin '{owner.name}'{_from(owner)}")
            continue
        if ep.name in disable or not (autoload or record.builtin):
            record.status = DISABLED
            record.error = "disabled in [plugins] disable" if ep.name in disable else f"third-party plugins are off ({AUTOLOAD_ENV})"
            host.records.append(record)
            continue
        try:
            module = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # an import error, or SystemExit at import: never fatal
            host.records.append(record)
            host._fail(record, f"import failed: {describe(exc)}")
            continue
        host._add(module, record)
    for plugin in plugins:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        host._add(plugin, PluginRecord(name))
    return host


def _dist(ep: Any) -> str:
    return ep.dist.name if ep.dist else ""


def _builtin(ep: Any) -> bool:
    return _dist(ep) == OWN_DIST
