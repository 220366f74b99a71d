"""TLS, basic auth and response headers for the HTTP server, from a Prometheus exporter-toolkit
web config file.

The same YAML file that node_exporter and blackbox_exporter read works here, with the same
meaning (https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md):
`tls_server_config` (cert_file/cert, key_file/key, client_auth_type, client_ca_file/client_ca,
client_allowed_sans, min_version, max_version, cipher_suites, prefer_server_cipher_suites,
curve_preferences), `http_server_config` (headers, http2), `basic_auth_users` (user: bcrypt
hash) and `rate_limit`. Anything else, or a value the toolkit would reject, is an error that
names the file and key. The server speaks HTTP/1.1 only, so `http2` has no effect.

Passwords are checked off the event loop, in one thread, with a bounded queue (a flood of
wrong passwords is turned away with 429 instead of stalling scrapes and scans), against a
dummy hash of the same cost for unknown users (so timing does not tell which users exist),
and verified (user, password) pairs are remembered in a small LRU, as exporter-toolkit does.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ctypes
import hashlib
import hmac
import os
import re
import secrets
import ssl
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bcrypt
import yaml
from aiohttp import web

from ..config import parse_duration
from ..errors import ConfigError, one_line, read_text

_TOP_KEYS = {"tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"}
_TLS_KEYS = {
    "cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type", "client_ca_file", "client_allowed_sans",
    "min_version", "max_version", "cipher_suites", "prefer_server_cipher_suites", "curve_preferences",
}
_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1, "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# client_auth_type -> (verify mode, verifies the chain). Go's RequestClientCert and
# RequireAnyClientCert ask for a certificate but never verify it; "RequireClientCert" is the
# toolkit's old name for RequireAnyClientCert.
_CLIENT_AUTH = {
    "NoClientCert": (ssl.CERT_NONE, False),
    "RequestClientCert": (ssl.CERT_OPTIONAL, False),
    "RequireAnyClientCert": (ssl.CERT_REQUIRED, False),
    "RequireClientCert": (ssl.CERT_REQUIRED, False),
    "VerifyClientCertIfGiven": (ssl.CERT_OPTIONAL, True),
    "RequireAndVerifyClientCert": (ssl.CERT_REQUIRED, True),
}
# Go's cipher suite names (crypto/tls CipherSuites()) -> OpenSSL's. TLS 1.3 suites are not
# configurable in Go either: accepted, without effect.
_CIPHERS = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_AES_128_GCM_SHA256": "",
    "TLS_AES_256_GCM_SHA384": "",
    "TLS_CHACHA20_POLY1305_SHA256": "",
}
_CURVES = {"CurveP256": "P-256", "CurveP384": "P-384", "CurveP521": "P-521", "X25519": "X25519"}
_DEFAULT_GROUPS = ("X25519", "P-256", "X448", "P-521", "P-384", "ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192")  # OpenSSL 3's
# exporter-toolkit's allowed response headers, with the values it accepts (None: any).
_HEADERS: dict[str, tuple[str, ...] | None] = {
    "Content-Security-Policy": None,
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-Content-Type-Options": ("nosniff",),
    "X-XSS-Protection": None,
    "Strict-Transport-Security": None,
}
_BCRYPT = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
MAX_PASSWORD = 72  # bytes bcrypt can check; a longer password is refused, not silently cut
CACHE_SIZE = 1024  # verified (user, password) pairs remembered
MAX_PENDING = 32  # password checks queued at once; more are answered 429 at once


class WebConfig:
    """The server's TLS context, users and headers; `update` swaps in a reloaded file's."""

    def __init__(self, path: str = "") -> None:
        self.path = path
        self.ssl_context: ssl.SSLContext | None = None  # the listening context, for the server's lifetime
        self.users: dict[str, bytes] = {}  # user -> bcrypt hash
        self.headers: dict[str, str] = {}
        self.allowed_sans: tuple[str, ...] = ()
        self.rate: tuple[float, int] | None = None  # (seconds per request, burst)
        self.summary = "plain HTTP"
        self.files: tuple[str, ...] = (path,) if path else ()  # this file and the certificate, key and CA files it names
        self._tls: ssl.SSLContext | None = None  # the context new handshakes switch to
        self._groups: tuple[str, ...] = ()  # curve_preferences, as OpenSSL group names
        self._verified: OrderedDict[bytes, bytes] = OrderedDict()  # digest(user, password) -> hash
        self._key = secrets.token_bytes(32)  # so the cache holds no plain hash of a password
        self._dummies: dict[int, bytes] = {}  # cost -> a hash of that cost, for unknown users
        self._pool: ThreadPoolExecutor | None = None
        self._pending = 0
        self._tokens = 0.0
        self._refilled = time.monotonic()

    def describe(self) -> str:
        return self.summary

    # ---- reload --------------------------------------------------------------------------

    def check_update(self, new: WebConfig) -> None:
        """Raise ConfigError if `new` cannot replace this configuration while serving."""
        if (self.ssl_context is None) != (new.ssl_context is None):
            raise ConfigError(new.path or self.path, "switching TLS on or off needs a restart of the agent", key="tls_server_config")

    def update(self, new: WebConfig) -> None:
        """Take a reloaded file's settings (after check_update). Certificates, client CAs,
        versions, ciphers and curves apply to new connections."""
        if self.ssl_context is not None and new.ssl_context is not None:
            live = self.ssl_context
            # What a handshake takes from the listening context when it starts...
            live.verify_mode = new.ssl_context.verify_mode
            live.minimum_version, live.maximum_version = new.ssl_context.minimum_version, new.ssl_context.maximum_version
            live.options = new.ssl_context.options
            live.set_ciphers(":".join(c["name"] for c in new.ssl_context.get_ciphers() if c["protocol"] != "TLSv1.3") or "DEFAULT")
            _set_groups(live, new._groups or _DEFAULT_GROUPS)
            # ...and the rest (certificate, client CAs, chain check) from the one it switches to.
            self._tls = new.ssl_context
        self.users, self.headers, self.allowed_sans, self.summary, self.files = new.users, new.headers, new.allowed_sans, new.summary, new.files
        if new.rate != self.rate:
            self.rate, self._tokens = new.rate, new._tokens
        self._verified.clear()

    def _switch(self, connection: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        """sni_callback (called for every handshake, SNI or not): use the current context."""
        if self._tls is not None and connection.context is not self._tls:
            connection.context = self._tls

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- basic auth --------------------------------------------------------------------------

    async def authenticate(self, header: str) -> bool | None:
        """True/False for the Authorization header; None when too many checks are queued."""
        credentials = _credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        if len(password) > MAX_PASSWORD:
            return False
        hashed = self.users.get(user)
        key = hmac.digest(self._key, user.encode() + b"\0" + password, hashlib.sha256)
        if hashed is not None and self._verified.get(key) == hashed:
            self._verified.move_to_end(key)
            return True
        if self._pending >= MAX_PENDING:
            return None
        if self._pool is None:
            # One thread: bcrypt is meant to be slow, and the event loop keeps the other core.
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bcrypt")
        self._pending += 1
        try:
            ok = await asyncio.get_running_loop().run_in_executor(self._pool, self._check, hashed, password)
        finally:
            self._pending -= 1
        if ok and hashed is not None:
            self._verified[key] = hashed
            while len(self._verified) > CACHE_SIZE:
                self._verified.popitem(last=False)
        return ok

    def _check(self, hashed: bytes | None, password: bytes) -> bool:
        """In the bcrypt thread. An unknown user costs as much as a known one."""
        if hashed is None:
            cost = max((int(h[4:6]) for h in self.users.values()), default=10)
            if cost not in self._dummies:
                self._dummies[cost] = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost))
            bcrypt.checkpw(password, self._dummies[cost])
            return False
        try:
            return bcrypt.checkpw(password, hashed)
        except ValueError:  # a hash bcrypt cannot read (checked at load, so not expected)
            return False

    def _take_token(self) -> bool:
        """exporter-toolkit's rate_limit: a token bucket over all requests."""
        if self.rate is None:
            return True
        every, burst = self.rate
        now = time.monotonic()
        self._tokens = min(burst, self._tokens + (now - self._refilled) / every)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def _san_allowed(self, request: web.Request) -> bool:
        if not self.allowed_sans:
            return True
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        names = {value for _, value in (peer or {}).get("subjectAltName", ())}
        return bool(names & set(self.allowed_sans))

    def middleware(self, open_paths: frozenset[str] = frozenset()) -> web.middleware:
        """Rate limit, client certificate names, basic auth (not for `open_paths`) and headers."""

        @web.middleware
        async def web_config(request: web.Request, handler):
            try:
                response = await self._guarded(request, handler, request.path not in open_paths)
            except web.HTTPException as exc:
                exc.headers.update(self.headers)
                raise
            response.headers.update(self.headers)
            return response

        return web_config

    async def _guarded(self, request: web.Request, handler, authenticate: bool):
        if not self._take_token():
            return web.Response(status=429, text="Too many requests\n")
        if not self._san_allowed(request):
            return web.Response(status=403, text="Client certificate not allowed\n")
        if self.users and authenticate:
            ok = await self.authenticate(request.headers.get("Authorization", ""))
            if ok is None:
                return web.Response(status=429, text="Too many authentication attempts in progress\n", headers={"Retry-After": "1"})
            if not ok:
                return web.Response(status=401, text="Unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="dijkwacht"'})
        return await handler(request)


def _credentials(header: str) -> tuple[str, bytes] | None:
    if not header.startswith("Basic "):
        return None
    try:
        user, sep, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password.encode()) if sep else None


# ---- loading -----------------------------------------------------------------------------


def load_web_config(path: Path | str | None) -> WebConfig:
    """Read and validate a web config file (all of it: certificates and keys are loaded)."""
    if not path:
        return WebConfig()
    path = Path(path)
    text = read_text(path, "web config")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(str(path), f"invalid YAML: {one_line(str(exc))}", line=mark.line + 1 if mark else None) from None
    except RecursionError:
        raise ConfigError(str(path), "invalid YAML: nested too deeply") from None
    return _build(path, raw if raw is not None else {})


def _mapping(path: Path, value: Any, key: str, known: set[str] | None = None) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(str(path), "must be a mapping", key=key)
    if known is not None:
        unknown = sorted(str(k) for k in value if k not in known)
        if unknown:
            raise ConfigError(str(path), f"unknown key (known: {', '.join(sorted(known))})", key=f"{key}.{unknown[0]}".lstrip("."))
    return value


def _string(path: Path, value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(str(path), "must be a string", key=key)
    return value


def _strings(path: Path, value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(str(path), "must be a list of strings", key=key)
    return value


def _build(path: Path, raw: Any) -> WebConfig:
    raw = _mapping(path, raw, "", _TOP_KEYS)
    config = WebConfig(str(path))
    for user, hashed in _mapping(path, raw.get("basic_auth_users"), "basic_auth_users").items():
        if not isinstance(hashed, str) or not _BCRYPT.match(hashed):
            raise ConfigError(str(path), f"user {one_line(str(user), 40)!r} needs a bcrypt hash such as $2y$10$ followed by 53 characters (htpasswd -nBC 10 \"\")", key="basic_auth_users")
        config.users[str(user)] = hashed.encode()
    http = _mapping(path, raw.get("http_server_config"), "http_server_config", {"headers", "http2"})
    if not isinstance(http.get("http2", True), bool):
        raise ConfigError(str(path), "must be true or false", key="http_server_config.http2")
    for name, value in _mapping(path, http.get("headers"), "http_server_config.headers", set(_HEADERS)).items():
        key = f"http_server_config.headers.{name}"
        value = _string(path, value, key)
        if "\r" in value or "\n" in value:
            raise ConfigError(str(path), "must be one line", key=key)
        allowed = _HEADERS[name]
        if allowed is not None and value and value.lower() not in allowed:
            raise ConfigError(str(path), f"must be one of {', '.join(allowed)}", key=key)
        if value:
            config.headers[name] = value
    limit = _mapping(path, raw.get("rate_limit"), "rate_limit", {"interval", "burst"})
    if limit:
        burst = limit.get("burst", 0)
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ConfigError(str(path), "must be a whole number of at least 1", key="rate_limit.burst")
        interval = limit.get("interval", 0)
        if interval not in (0, "0", "0s"):
            try:
                config.rate = (parse_duration(interval), burst)
                config._tokens = float(burst)  # the bucket starts full, as Go's rate.Limiter
            except ValueError as exc:
                raise ConfigError(str(path), str(exc), key="rate_limit.interval") from None
    tls = _mapping(path, raw.get("tls_server_config"), "tls_server_config", _TLS_KEYS)
    if "tls_server_config" in raw:
        _tls(path, tls, config)
    features = ["TLS" if config.ssl_context else "plain HTTP"]
    if config.users:
        features.append(f"basic auth for {len(config.users)} user(s)")
    config.summary = ", ".join(features)
    return config


def _tls(path: Path, tls: dict, config: WebConfig) -> None:
    def key(name: str) -> str:
        return f"tls_server_config.{name}"

    def error(name: str, message: str) -> ConfigError:
        return ConfigError(str(path), message, key=key(name))

    if not tls:
        # exporter-toolkit would quietly serve plain HTTP here; a TLS section that asks for nothing is a mistake.
        raise error("cert_file", "tls_server_config is empty: give cert_file and key_file, or remove the section")
    values = {k: _string(path, v, key(k)) for k, v in tls.items() if k not in ("cipher_suites", "curve_preferences", "client_allowed_sans", "prefer_server_cipher_suites")}
    for name, inline in (("cert_file", "cert"), ("key_file", "key")):
        if values.get(name) and values.get(inline):
            raise error(name, f"give {name} or {inline}, not both")
        if not values.get(name) and not values.get(inline):
            raise error(name, f"is required for TLS (or {inline} with the PEM text)")
    base = path.parent

    def file(name: str) -> str:
        value = values[name]
        return value if Path(value).is_absolute() else str(base / value)

    versions = {}
    for name, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        version = values.get(name, default)
        if version not in _VERSIONS:
            raise error(name, f"{one_line(version, 20)!r} is not one of {', '.join(_VERSIONS)}")
        versions[name] = _VERSIONS[version]
    if versions["min_version"] > versions["max_version"]:
        raise error("max_version", "is below min_version")
    auth = values.get("client_auth_type", "NoClientCert")
    if auth not in _CLIENT_AUTH:
        raise error("client_auth_type", f"{one_line(auth, 40)!r} is not one of {', '.join(_CLIENT_AUTH)}")
    mode, verify = _CLIENT_AUTH[auth]
    has_ca = bool(values.get("client_ca_file") or values.get("client_ca"))
    if has_ca and mode == ssl.CERT_NONE:
        raise error("client_auth_type", "client CAs are configured, but client_auth_type is NoClientCert")
    if verify and not has_ca:
        raise error("client_ca_file", f"is required with client_auth_type {auth}: the CA that signs client certificates")
    sans = _strings(path, tls.get("client_allowed_sans"), key("client_allowed_sans"))
    if sans and mode != ssl.CERT_REQUIRED:
        raise error("client_allowed_sans", "requires client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert")
    prefer = tls.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        raise error("prefer_server_cipher_suites", "must be true or false")
    ciphers = []
    for name in _strings(path, tls.get("cipher_suites"), key("cipher_suites")):
        if name not in _CIPHERS:
            raise error("cipher_suites", f"unknown cipher suite {one_line(name, 60)!r} (Go's names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)")
        if _CIPHERS[name]:
            ciphers.append(_CIPHERS[name])
    groups = []
    for name in _strings(path, tls.get("curve_preferences"), key("curve_preferences")):
        if name not in _CURVES:
            raise error("curve_preferences", f"unknown curve {one_line(name, 40)!r} (one of {', '.join(_CURVES)})")
        groups.append(_CURVES[name])

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.minimum_version = versions["min_version"]
        context.maximum_version = versions["max_version"]
    except (ValueError, ssl.SSLError) as exc:
        raise error("min_version", f"not supported by this OpenSSL: {exc}") from None
    if prefer:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if ciphers:
        try:
            context.set_ciphers(":".join(ciphers))
        except ssl.SSLError:
            raise error("cipher_suites", "none of these cipher suites is available in this OpenSSL") from None
    named = [file(name) for name in ("cert_file", "key_file", "client_ca_file") if values.get(name)]
    config.files = (*config.files, *named)
    with _pem(values.get("cert"), "cert") as cert, _pem(values.get("key"), "key") as secret:
        cert_path = cert or file("cert_file")
        key_path = secret or file("key_file")
        try:
            context.load_cert_chain(cert_path, key_path)
        except (OSError, ssl.SSLError) as exc:
            which = "cert" if values.get("cert") else "cert_file"
            where = "" if values.get("cert") else f" {cert_path} / {key_path}"
            raise error(which, f"cannot load certificate and key{where}: {one_line(str(exc))}") from None
    if values.get("client_ca_file"):
        ca = file("client_ca_file")
        try:
            context.load_verify_locations(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise error("client_ca_file", f"cannot load client CA file {ca}: {one_line(str(exc))}") from None
    elif values.get("client_ca"):
        try:
            context.load_verify_locations(cadata=values["client_ca"])
        except (ValueError, ssl.SSLError) as exc:
            raise error("client_ca", f"cannot load the client CA certificates: {one_line(str(exc))}") from None
    context.verify_mode = mode
    if groups or (mode != ssl.CERT_NONE and not verify):
        try:
            _set_groups(context, groups)
            if mode != ssl.CERT_NONE and not verify:
                _accept_any_certificate(context)
        except OSError as exc:
            raise error("client_auth_type" if not groups else "curve_preferences", str(exc)) from None
    config.ssl_context = config._tls = context
    config._groups = tuple(groups)
    config.allowed_sans = tuple(sans)
    context.sni_callback = config._switch


@contextlib.contextmanager
def _pem(text: str | None, name: str):
    """Inline PEM text as a path OpenSSL can read, without writing it to disk (memfd)."""
    if not text:
        yield None
        return
    fd = os.memfd_create(f"dijkwacht-{name}", os.MFD_CLOEXEC)
    try:
        os.write(fd, text.encode())
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


# ---- what Python's ssl module does not offer ------------------------------------------------
# Go's RequestClientCert / RequireAnyClientCert ask for a client certificate without verifying
# it, and curve_preferences is a list; Python's ssl always verifies a certificate it asks for,
# and sets one curve at most. Both are one OpenSSL call on the context's SSL_CTX, reached
# through the _ssl module's own library. The pointer is checked against what the ssl module
# reports before anything is changed, and a mismatch is a clear configuration error.

_ACCEPT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)(lambda store, arg: 1)
_SSL_CTRL_SET_GROUPS_LIST = 92


def _openssl(context: ssl.SSLContext) -> tuple[ctypes.CDLL, int]:
    lib = ctypes.CDLL(ssl._ssl.__file__)  # type: ignore[attr-defined]
    lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    lib.SSL_CTX_set_cert_verify_callback.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.SSL_CTX_set_cert_verify_callback.restype = None
    lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    lib.SSL_CTX_ctrl.restype = ctypes.c_long
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value  # PySSLContext.ctx
    expected = {ssl.CERT_NONE: 0, ssl.CERT_OPTIONAL: 1, ssl.CERT_REQUIRED: 3}[context.verify_mode]
    if not pointer or lib.SSL_CTX_get_verify_mode(pointer) != expected:
        raise OSError("not supported with this Python's ssl module")
    return lib, pointer


def _accept_any_certificate(context: ssl.SSLContext) -> None:
    lib, pointer = _openssl(context)
    lib.SSL_CTX_set_cert_verify_callback(pointer, ctypes.cast(_ACCEPT, ctypes.c_void_p), None)


def _set_groups(context: ssl.SSLContext, groups: list[str] | tuple[str, ...]) -> None:
    if not groups:
        return
    lib, pointer = _openssl(context)
    if lib.SSL_CTX_ctrl(pointer, _SSL_CTRL_SET_GROUPS_LIST, 0, ctypes.c_char_p(":".join(groups).encode())) != 1:
        raise OSError(f"this OpenSSL does not support {', '.join(groups)}")
