"""dijkwacht: watches which providers serve a domain and under which jurisdiction they fall."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dijkwacht")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

from .hookspecs import hookimpl  # noqa: E402  (the one import a plugin needs from here)

__all__ = ["__version__", "hookimpl"]
