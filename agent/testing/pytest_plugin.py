"""pytest fixtures of the plugin test kit, registered through the `pytest11` entry point.

They work with pytest-asyncio in `asyncio_mode = "strict"` (mark async tests with
`@pytest.mark.asyncio`) as well as in "auto".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from ..catalog import Catalog
from ..pluginhost import PluginHost, make_plugin_manager
from .dnsserver import FakeDNSServer
from .kit import plugin_catalog

try:
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # without pytest-asyncio only the synchronous fixtures are usable
    _async_fixture = pytest.fixture


@_async_fixture
async def dns_server() -> AsyncIterator[Callable[..., Awaitable[FakeDNSServer]]]:
    """Factory: `server = await dns_server(zone_text, failures=..., truncate=...)`, started on
    127.0.0.1 on the test's event loop and stopped after the test."""
    servers: list[FakeDNSServer] = []

    async def start(zone: str, **kwargs) -> FakeDNSServer:
        server = await FakeDNSServer(zone, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
def dijkwacht_catalog() -> Callable[..., Catalog]:
    """Factory: `dijkwacht_catalog(my_plugin_module, "extra.toml")` -> the built-in catalog plus
    those catalog files only (no other installed plugin's)."""
    return plugin_catalog


@pytest.fixture
def plugin_host() -> PluginHost:
    """A fresh plugin manager with dijkwacht's built-in plugins only."""
    return make_plugin_manager(autoload=False)
