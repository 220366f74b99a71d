"""dijkwacht: watches which providers serve a domain and under which jurisdiction they fall."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dijkwacht")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

from .hookspecs import API_VERSION, hookimpl  # noqa: E402  (what a plugin needs from here)

__all__ = ["API_VERSION", "__version__", "hookimpl"]
