"""Hook specifications for dijkwacht plugins.

A plugin is a module (or object) registered under the `dijkwacht` entry-point group, e.g. in
its pyproject.toml::

    [project.entry-points.dijkwacht]
    mydetector = "my_package.detector"

and implements one or more of the hooks below with `@dijkwacht.hookimpl`. The built-in
detectors in `dijkwacht_plugins` are registered exactly this way.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .detector import Detector

PROJECT = "dijkwacht"
# The plugin API: these hooks, dijkwacht.detector, the DetectorContext and dijkwacht.testing.
# The minor number grows with additions a plugin may rely on; the major one with any change
# that can break a plugin. A plugin declares what it supports in its module:
#     DIJKWACHT_API = ">=1.0,<2"
API_VERSION = "1.0"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def dijkwacht_detectors() -> list[type[Detector]]:
    """Return the detector classes this plugin provides.

    Each class subclasses :class:`dijkwacht.detector.Detector`, has a unique ``name`` and the
    ``categories`` it reports, and implements ``async detect(target, ctx)`` returning findings.
    The core instantiates each class once per scan with its validated settings.
    """


@hookspec
def dijkwacht_catalog_files() -> list[Path]:
    """Return paths of provider catalog files (TOML, same schema as the built-in catalog).

    They are loaded after the built-in catalog and before the user's own files, so a plugin can
    add the providers its detectors report.
    """
