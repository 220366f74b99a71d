"""Building the plugin manager and collecting what plugins provide.

Nothing is loaded at import time: `make_plugin_manager()` is called by the CLI (and by tests,
which get a fresh manager each time), so plugin discovery is explicit and repeatable.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

import pluggy
import structlog

from . import hookspecs
from .detector import Detector
from .errors import DijkwachtError

ENTRY_POINT_GROUP = "dijkwacht"
AUTOLOAD_ENV = "DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD"
OWN_DIST = "dijkwacht"

log = structlog.get_logger()


class PluginError(DijkwachtError):
    """A plugin cannot be used as given (bad hook, duplicate detector name...)."""


@dataclass
class PluginHost:
    """A plugin manager plus what loading it went through."""

    pm: pluggy.PluginManager
    versions: dict[str, str] = field(default_factory=dict)  # plugin name -> distribution version
    failed: dict[str, str] = field(default_factory=dict)  # plugin name -> why it was not loaded
    detector_owner: dict[str, str] = field(default_factory=dict)  # detector name -> plugin name

    def detector_classes(self) -> list[type[Detector]]:
        """All detector classes, validated, in a stable order; duplicate names are an error."""
        by_name: dict[str, tuple[type[Detector], str]] = {}
        for impl in self.pm.hook.dijkwacht_detectors.get_hookimpls():
            plugin = impl.plugin_name
            try:
                classes = impl.function()
            except Exception as exc:  # one broken plugin never takes the agent down
                self.failed[plugin] = f"dijkwacht_detectors() raised {type(exc).__name__}: {exc}"
                log.error("plugin.failed", plugin=plugin, error=self.failed[plugin])
                continue
            for cls in classes or ():
                _validate(cls, plugin)
                if cls.name in by_name:
                    raise PluginError(
                        f"detector name '{cls.name}' is provided by both plugin '{by_name[cls.name][1]}' "
                        f"and plugin '{plugin}'; disable one of them"
                    )
                by_name[cls.name] = (cls, plugin)
        self.detector_owner = {name: plugin for name, (_, plugin) in by_name.items()}
        return [cls for cls, _ in sorted(by_name.values(), key=lambda item: item[0].name)]

    def catalog_files(self) -> list[Path]:
        files: list[Path] = []
        for impl in self.pm.hook.dijkwacht_catalog_files.get_hookimpls():
            try:
                files.extend(Path(p) for p in impl.function() or ())
            except Exception as exc:
                self.failed[impl.plugin_name] = f"dijkwacht_catalog_files() raised {type(exc).__name__}: {exc}"
                log.error("plugin.failed", plugin=impl.plugin_name, error=self.failed[impl.plugin_name])
        return files


def _validate(cls: object, plugin: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        raise PluginError(f"plugin '{plugin}' returned {cls!r} from dijkwacht_detectors(); expected Detector subclasses")
    if not cls.name or not cls.name.replace("_", "").replace("-", "").isalnum() or cls.name != cls.name.lower():
        raise PluginError(f"detector {cls.__qualname__} of plugin '{plugin}' needs a lowercase name ([a-z0-9_-])")
    if not cls.categories:
        raise PluginError(f"detector '{cls.name}' of plugin '{plugin}' declares no categories")


def make_plugin_manager(plugins: Iterable[ModuleType | object] = (), *, autoload: bool | None = None) -> PluginHost:
    """Build a plugin manager: entry-point plugins, then any plugin objects passed in.

    With autoload off (or `DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD` set), only dijkwacht's own
    entry points (the built-in detectors) are loaded; third-party ones are skipped.
    """
    if autoload is None:
        autoload = not os.environ.get(AUTOLOAD_ENV)
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    host = PluginHost(pm)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist else ""
        if not autoload and dist != OWN_DIST:
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            module = ep.load()
        except Exception as exc:  # a plugin that fails to import is reported, not fatal
            host.failed[ep.name] = f"import failed: {type(exc).__name__}: {exc}"
            log.error("plugin.failed", plugin=ep.name, error=host.failed[ep.name])
            continue
        _register(pm, module, ep.name)
        host.versions[ep.name] = ep.dist.version if ep.dist else ""
    for plugin in plugins:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        _register(pm, plugin, name)
        host.versions.setdefault(name, "")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        raise PluginError(f"plugin '{name}' implements a hook dijkwacht does not know: {exc}") from None
    return host


def _register(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin '{name}' is invalid: {exc}") from None
    except ValueError as exc:
        raise PluginError(f"plugin '{name}' cannot be registered: {exc}") from None
