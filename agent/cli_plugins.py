"""`dijkwacht plugins`: every plugin found, what it provides, and why it is not used if it is not."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .config import PluginSettings, load_plugin_settings
from .pluginhost import FAILED, PluginHost, make_plugin_manager


def add_strict_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strict-plugins", action="store_true",
        help="exit with status 2 if a plugin cannot be used, instead of skipping it (for CI; also [plugins] strict = true)",
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    plugins = sub.add_parser(
        "plugins", help="list plugins: distribution, version, detectors, settings, catalog files, status",
        description="List every installed plugin: its distribution and version, its detectors with their categories and "
        "settings (with defaults), the catalog files it contributes, and its status: loaded, disabled, or failed (with why).",
    )
    plugins.add_argument("--config", metavar="FILE", help="configuration file (its [plugins] section applies)")
    plugins.add_argument("--format", choices=["json", "table"], default="table", help="output format")
    add_strict_option(plugins)


def load_host(config: str | None, strict: bool) -> PluginHost:
    """Plugins as a command without a full configuration loads them: the file's [plugins] section applies."""
    settings = load_plugin_settings(config) if config else PluginSettings()
    return make_plugin_manager(disable=settings.disable, strict=strict or settings.strict)


def rows(host: PluginHost) -> list[dict[str, Any]]:
    return [
        {
            "plugin": r.name,
            "distribution": r.distribution,
            "version": r.version,
            "builtin": r.builtin,
            "status": r.status,
            "error": r.error,
            "api": r.api,
            "detectors": [
                {"name": c.name, "categories": list(c.categories), "description": c.description, "settings": dict(c.settings)}
                for c in r.detectors
            ],
            "catalog_files": [str(p) for p in r.catalog_files],
        }
        for r in host.records
    ]


def run(args: argparse.Namespace) -> int:
    found = rows(load_host(args.config, args.strict_plugins))
    if args.format == "json":
        print(json.dumps(found, indent=2, default=str, ensure_ascii=False))
        return 0
    for row in found:
        origin = "built-in" if row["builtin"] else f"API {row['api']}" if row["api"] else ""
        status = f"FAILED: {row['error']}" if row["status"] == FAILED else f"disabled: {row['error']}" if row["error"] else row["status"]
        print("  ".join(x for x in (row["plugin"], row["distribution"] or "-", row["version"] or "-", origin, status) if x))
        for detector in row["detectors"]:
            print(f"  detector {detector['name']} ({', '.join(detector['categories'])}): {detector['description'] or '-'}")
            for key, default in detector["settings"].items():
                print(f"    {key} = {json.dumps(default, default=str, ensure_ascii=False)}")
        for path in row["catalog_files"]:
            print(f"  catalog {path}")
    return 0
