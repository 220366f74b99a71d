"""The test kit for detector plugins, also used by dijkwacht's own tests.

- `FakeDNSServer`: an authoritative DNS server on 127.0.0.1 from zone lines, which can also
  answer SERVFAIL, REFUSED, stay silent or truncate for chosen names.
- `run_detector(...)`: run one detector on one target exactly as the agent does (its own
  thread, the core's timeout, the contract check, the catalog's owners) and see the result.
- `plugin_catalog(...)`: the built-in catalog plus only the catalog files you name.
- `check_plugin(...)`: load a plugin as the agent would and see whether it is usable.

With pytest, the fixtures `dns_server`, `dijkwacht_catalog` and `plugin_host` come from the
pytest plugin `dijkwacht.testing.pytest_plugin`, registered through the `pytest11` entry point.
"""

from .dnsserver import FakeDNSServer, Record, parse_zone
from .kit import DetectorRun, check_plugin, plugin_catalog, run_detector

__all__ = ["DetectorRun", "FakeDNSServer", "Record", "check_plugin", "parse_zone", "plugin_catalog", "run_detector"]
