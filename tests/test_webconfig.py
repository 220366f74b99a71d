"""The web config: basic auth off the event loop and constant-time, exporter-toolkit's TLS and
header settings applied (not just accepted), every mistake named, and a reload that rotates
certificates on the live server."""

from __future__ import annotations

import asyncio
import base64
import ssl
import statistics
import subprocess
import time

import aiohttp
import bcrypt
import pytest
from aiohttp import web

from dijkwacht.daemon.webconfig import MAX_PENDING, WebConfig, load_web_config
from dijkwacht.errors import ConfigError


def basic(user: str, password: str | bytes) -> str:
    raw = user.encode() + b":" + (password.encode() if isinstance(password, str) else password)
    return "Basic " + base64.b64encode(raw).decode()


def hashed(password: str, cost: int = 4) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode().replace("$2b$", "$2y$")


def web_config(tmp_path, text: str) -> WebConfig:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return load_web_config(path)


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def certificate(directory, name: str, cn: str = "localhost", ca: str = "") -> None:
    """name.pem / name.key; self-signed, or signed by the CA `ca` (ca.pem / ca.key)."""
    key, pem = directory / f"{name}.key", directory / f"{name}.pem"
    if not ca:
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={cn}", "-days", "1",
                "-addext", f"subjectAltName=DNS:{cn}", "-keyout", str(key), "-out", str(pem))
        return
    csr = directory / f"{name}.csr"
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={cn}", "-keyout", str(key), "-out", str(csr))
    (directory / f"{name}.ext").write_text(f"subjectAltName=DNS:{cn}\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(directory / f"{ca}.pem"), "-CAkey", str(directory / f"{ca}.key"), "-CAcreateserial",
            "-days", "1", "-extfile", str(directory / f"{name}.ext"), "-out", str(pem))


# ---- basic auth ------------------------------------------------------------------------------


async def test_password_checks_do_not_block_the_event_loop(tmp_path):
    config = web_config(tmp_path, f"basic_auth_users:\n  prometheus: '{hashed('right', cost=10)}'\n")
    lags = []

    async def ticker():
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - started)

    tick = asyncio.create_task(ticker())
    started = time.perf_counter()
    results = await asyncio.gather(*(config.authenticate(basic("prometheus", f"wrong{i}")) for i in range(12)))
    checking = time.perf_counter() - started
    tick.cancel()
    assert results == [False] * 12
    # Twelve cost-10 checks take a while (one thread), but the loop keeps ticking meanwhile.
    assert checking > 0.2 and max(lags) < 0.25, (checking, max(lags))


async def test_wrong_passwords_are_not_remembered_and_right_ones_are(tmp_path):
    config = web_config(tmp_path, f"basic_auth_users:\n  prometheus: '{hashed('right')}'\n")
    for i in range(200):
        assert await config.authenticate(basic("prometheus", f"guess{i}")) is False
        assert await config.authenticate(basic(f"nobody{i}", "x")) is False
    assert len(config._verified) == 0
    assert await config.authenticate(basic("prometheus", "right")) is True
    assert len(config._verified) == 1
    started = time.perf_counter()
    assert await config.authenticate(basic("prometheus", "right")) is True  # from the cache
    assert time.perf_counter() - started < 0.01


@pytest.mark.parametrize("header", ["", "Bearer x", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Basic " + base64.b64encode(b"\xff:\xfe").decode()])
async def test_malformed_credentials_are_simply_wrong(tmp_path, header):
    config = web_config(tmp_path, f"basic_auth_users:\n  prometheus: '{hashed('right')}'\n")
    assert await config.authenticate(header) is False


async def test_a_flood_of_checks_is_turned_away_not_queued(tmp_path):
    config = web_config(tmp_path, f"basic_auth_users:\n  prometheus: '{hashed('right', cost=8)}'\n")
    results = await asyncio.gather(*(config.authenticate(basic("prometheus", f"w{i}")) for i in range(MAX_PENDING + 40)))
    assert results.count(None) == 40 and results.count(False) == MAX_PENDING


async def test_unknown_users_take_as_long_as_known_ones(tmp_path):
    config = web_config(tmp_path, f"basic_auth_users:\n  prometheus: '{hashed('right', cost=10)}'\n")
    await config.authenticate(basic("nobody", "warm-up"))  # the dummy hash is made once

    async def timed(user: str) -> float:
        started = time.perf_counter()
        assert await config.authenticate(basic(user, "wrong")) is False
        return time.perf_counter() - started

    known = statistics.median([await timed("prometheus") for _ in range(5)])
    unknown = statistics.median([await timed("nobody") for _ in range(5)])
    assert 0.5 < unknown / known < 2, (known, unknown)  # was 2 ms against 253 ms


async def test_over_long_password_is_401_without_error(tmp_path, aiohttp_server_factory):
    config = web_config(tmp_path, f"basic_auth_users:\n  prometheus: '{hashed('right')}'\n")
    base = await aiohttp_server_factory(config)
    async with aiohttp.ClientSession() as http:
        for password in ["x" * 73, "é" * 40, "right" + "x" * 100]:
            async with http.get(f"{base}/", headers={"Authorization": basic("prometheus", password)}) as response:
                assert response.status == 401


def test_malformed_hash_is_rejected_at_load(tmp_path):
    for bad in ["$2y$10$short", "$2y$99$" + "a" * 53, "$1$md5crypt", "plaintext"]:
        with pytest.raises(ConfigError, match="needs a bcrypt hash"):
            web_config(tmp_path, f"basic_auth_users:\n  bob: '{bad}'\n")


# ---- a tiny server around the middleware -----------------------------------------------------


@pytest.fixture
async def aiohttp_server_factory():
    runners = []

    async def start(config: WebConfig, handler=None) -> str:
        async def hello(_: web.Request) -> web.Response:
            return web.Response(text="hello\n")

        app = web.Application(middlewares=[config.middleware()])
        app.router.add_get("/", handler or hello)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=config.ssl_context)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"{'https' if config.ssl_context else 'http'}://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


def client_context(tmp_path, cert: str = "", *, ca: str = "server") -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(tmp_path / f"{ca}.pem"))
    context.check_hostname = False
    if cert:
        context.load_cert_chain(str(tmp_path / f"{cert}.pem"), str(tmp_path / f"{cert}.key"))
    return context


async def handshake(url: str, context: ssl.SSLContext) -> ssl.SSLObject:
    """Connect, finish the TLS handshake and return its outcome (no HTTP needed)."""
    host, port = url.split("://")[1].split(":")
    _, writer = await asyncio.open_connection(host, int(port), ssl=context)
    try:
        return writer.get_extra_info("ssl_object")
    finally:
        writer.close()


async def fetch(url: str, context: ssl.SSLContext | None = None, headers=None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(url, ssl=context if context is not None else True, headers=headers or {}) as response:
            await response.read()
            return response.status, dict(response.headers)


# ---- TLS --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        ("{}", "tls_server_config is empty"),
        ("\n  key_file: server.key\n", "cert_file: is required"),
        ("\n  cert_file: server.pem\n  key_file: server.key\n  min_version: TLS99\n", "min_version: 'TLS99' is not one of"),
        ("\n  cert_file: server.pem\n  key_file: server.key\n  max_version: TLS11\n", "max_version: is below min_version"),
        ("\n  cert_file: server.pem\n  key_file: server.key\n  cipher_suites: [TLS_FANCY]\n", "unknown cipher suite 'TLS_FANCY'"),
        ("\n  cert_file: server.pem\n  key_file: server.key\n  curve_preferences: [CurveP999]\n", "unknown curve 'CurveP999'"),
        ("\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n", "client_ca_file: is required with client_auth_type RequireAndVerifyClientCert"),
        ("\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: VerifyClientCertIfGiven\n", "client_ca_file: is required"),
        ("\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: nope.pem\n", "cannot load client CA file .*nope.pem"),
        ("\n  cert_file: server.pem\n  key_file: server.key\n  client_ca_file: server.pem\n", "client_auth_type is NoClientCert"),
        ("\n  cert_file: server.pem\n  key_file: server.key\n  client_allowed_sans: [x]\n", "client_allowed_sans: requires client_auth_type"),
        ("\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: Sometimes\n", "'Sometimes' is not one of"),
        ("\n  cert_file: gone.pem\n  key_file: server.key\n", "cannot load certificate and key .*gone.pem"),
        ("\n  cert_file: server.pem\n  key_file: server.key\n  prefer_server_cipher_suites: maybe\n", "must be true or false"),
    ],
)
def test_tls_mistakes_are_named(tmp_path, tls, message):
    certificate(tmp_path, "server")
    with pytest.raises(ConfigError, match=message):
        web_config(tmp_path, f"tls_server_config: {tls}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("http_server_config:\n  headers:\n    X-Powered-By: me\n", "unknown key"),
        ("http_server_config:\n  headers:\n    X-Frame-Options: allow-all\n", "must be one of deny, sameorigin"),
        ("http_server_config:\n  http2: 1\n", "must be true or false"),
        ("rate_limit:\n  interval: 1s\n  burst: 0\n", "burst: must be a whole number"),
        ("rate_limit:\n  interval: soon\n  burst: 1\n", "rate_limit.interval"),
    ],
)
def test_http_settings_mistakes_are_named(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        web_config(tmp_path, text)


async def test_tls_versions_and_ciphers_are_applied(tmp_path, aiohttp_server_factory):
    certificate(tmp_path, "server")
    config = web_config(tmp_path, "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  max_version: TLS12\n"
                                  "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n  curve_preferences: [CurveP384]\n")
    base = await aiohttp_server_factory(config)
    assert (await fetch(base, client_context(tmp_path)))[0] == 200
    tls = await handshake(base, client_context(tmp_path))
    assert tls.version() == "TLSv1.2" and tls.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"
    only13 = client_context(tmp_path)
    only13.minimum_version = ssl.TLSVersion.TLSv1_3
    with pytest.raises(aiohttp.ClientError):
        await fetch(base, only13)
    other_cipher = client_context(tmp_path)
    other_cipher.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    with pytest.raises(aiohttp.ClientError):
        await fetch(base, other_cipher)
    other_curve = client_context(tmp_path)
    other_curve.set_ecdh_curve("prime256v1")  # the client offers P-256 only; the server allows P-384 only
    with pytest.raises(aiohttp.ClientError):
        await fetch(base, other_curve)


async def test_require_any_client_cert_requires_but_does_not_verify(tmp_path, aiohttp_server_factory):
    certificate(tmp_path, "server")
    certificate(tmp_path, "stranger", cn="stranger")  # self-signed: no CA vouches for it
    config = web_config(tmp_path, "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAnyClientCert\n")
    base = await aiohttp_server_factory(config)
    assert (await fetch(base, client_context(tmp_path, "stranger")))[0] == 200
    with pytest.raises(aiohttp.ClientError):
        await fetch(base, client_context(tmp_path))  # no certificate at all


async def test_require_and_verify_client_cert_with_allowed_sans(tmp_path, aiohttp_server_factory):
    certificate(tmp_path, "server")
    certificate(tmp_path, "ca", cn="dijkwacht test CA")
    certificate(tmp_path, "prometheus", cn="prometheus", ca="ca")
    certificate(tmp_path, "grafana", cn="grafana", ca="ca")
    certificate(tmp_path, "stranger", cn="prometheus")  # right name, wrong issuer
    config = web_config(tmp_path, "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n"
                                  "  client_ca_file: ca.pem\n  client_allowed_sans: [prometheus]\n")
    base = await aiohttp_server_factory(config)
    assert (await fetch(base, client_context(tmp_path, "prometheus")))[0] == 200
    assert (await fetch(base, client_context(tmp_path, "grafana")))[0] == 403
    with pytest.raises(aiohttp.ClientError):
        await fetch(base, client_context(tmp_path, "stranger"))


async def test_headers_are_sent_on_every_answer(tmp_path, aiohttp_server_factory):
    config = web_config(tmp_path, "http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    Content-Security-Policy: \"default-src 'none'\"\n"
                                  f"basic_auth_users:\n  prometheus: '{hashed('right')}'\n")
    base = await aiohttp_server_factory(config)
    for headers, status in [({}, 401), ({"Authorization": basic("prometheus", "right")}, 200)]:
        got, sent = await fetch(base, headers=headers)
        assert got == status
        assert sent["X-Frame-Options"] == "deny" and sent["Content-Security-Policy"] == "default-src 'none'"
    got, sent = await fetch(base + "/nope", headers={"Authorization": basic("prometheus", "right")})
    assert got == 404 and sent["X-Frame-Options"] == "deny"


async def test_rate_limit_answers_429_beyond_the_burst(tmp_path, aiohttp_server_factory):
    base = await aiohttp_server_factory(web_config(tmp_path, "rate_limit:\n  interval: 1m\n  burst: 3\n"))
    statuses = [(await fetch(base))[0] for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


async def test_reload_rotates_the_certificate_on_the_live_server(tmp_path, aiohttp_server_factory):
    certificate(tmp_path, "server", cn="first")
    text = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
    config = web_config(tmp_path, text)
    base = await aiohttp_server_factory(config)

    async def served_name() -> str:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        return ssl.DER_cert_to_PEM_cert((await handshake(base, context)).getpeercert(binary_form=True))

    first = await served_name()
    assert first == (tmp_path / "server.pem").read_text()
    certificate(tmp_path, "server", cn="second")
    new = web_config(tmp_path, text)
    config.check_update(new)
    config.update(new)
    assert await served_name() == (tmp_path / "server.pem").read_text() != first
    with pytest.raises(ConfigError, match="needs a restart"):
        config.check_update(WebConfig())
