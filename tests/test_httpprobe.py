"""The HTTP probe contacts public addresses only (unless allowed): a target whose name points at
127.0.0.1, a private network or a metadata address must not make the agent fetch from there and
hand the answer back through /probe."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiohttp
import pytest

from dijkwacht.daemon.agent import Daemon
from dijkwacht.daemon.server import serve
from dijkwacht.daemon.webconfig import WebConfig
from dijkwacht.dns import DNSEngine
from dijkwacht.httpprobe import HttpProbe, is_public


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255",
     "::1", "::", "fe80::1", "fd00:ec2::254", "fc00::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1",
     "2001:db8::1", "ff02::1", "not an address"],
)
def test_non_public_addresses(address):
    assert not is_public(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "52.101.68.1", "2606:4700::1111", "2a00:1450:4001::1", "64:ff9b::808:808"])
def test_public_addresses(address):
    assert is_public(address)


@pytest.fixture
def local_web():
    """A web server on 127.0.0.1:80 that counts its requests and looks like Cloudflare."""
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            requests.append(self.headers["Host"])
            self.send_response(200)
            self.send_header("CF-RAY", "8f00deadbeef-AMS")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    try:
        server = ThreadingHTTPServer(("127.0.0.1", 80), Handler)
    except PermissionError:
        pytest.skip("binding 127.0.0.1:80 needs the private user+network namespace of the README's test command")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield requests
    server.shutdown()
    server.server_close()


async def test_probe_refuses_private_addresses_unless_allowed(dns_server, local_web):
    dns = await dns_server("inside.nl A 127.0.0.1\nmeta.nl A 169.254.169.254\nmapped.nl AAAA ::ffff:127.0.0.1\n")
    engine = DNSEngine([dns.address], timeout=0.5, tries=1)
    strict = HttpProbe(engine, timeout=2, https_port=1, http_port=80)
    allowing = HttpProbe(engine, timeout=2, https_port=1, http_port=80, allow_private=True)
    try:
        for host in ("inside.nl", "meta.nl", "mapped.nl"):
            result = await strict.headers(host, host)
            assert result.status == 0 and "no public addresses" in result.error, result
        literal = await strict._get("http://127.0.0.1:80/", "inside.nl")
        assert "not a public address" in literal.error
        assert local_web == []
        result = await allowing.headers("inside.nl", "inside.nl")
        assert result.status == 200 and result.headers["cf-ray"] == "8f00deadbeef-AMS"
        assert local_web == ["inside.nl"]
    finally:
        await strict.close()
        await allowing.close()
        await engine.close()


async def test_probe_endpoint_does_not_relay_a_private_site(dns_server, local_web, tmp_path):
    dns = await dns_server("inside.nl A 127.0.0.1\nwww.inside.nl A 127.0.0.1\n")
    config = tmp_path / "dijkwacht.toml"
    text = f'[agent]\nnameservers = ["{dns.address}"]\ndns_timeout = 0.5\nhttp_probe = true\nhttp_timeout = 2\n[daemon]\nstate_path = "{tmp_path / "s.db"}"\n'
    config.write_text(text)
    for allowed, relayed in ((False, False), (True, True)):
        if allowed:
            config.write_text(text.replace("http_probe = true", "http_probe = true\nhttp_probe_allow_private = true"))
        daemon = Daemon(config)
        await daemon.start()
        runner = await serve(daemon, WebConfig(), "127.0.0.1:0")
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{runner.addresses[0][1]}/probe", params={"target": "inside.nl"}) as response:
                    text_ = await response.text()
            assert ('provider="cloudflare"' in text_) is relayed
            assert bool(local_web) is relayed
        finally:
            await runner.cleanup()
            await daemon.stop()
