"""TLS and basic auth for the HTTP server, from a Prometheus exporter-toolkit web config file.

The same YAML file that node_exporter and blackbox_exporter read works here:
`tls_server_config` (cert_file, key_file, client_auth_type, client_ca_file, min_version) and
`basic_auth_users` (user: bcrypt hash).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import yaml
from aiohttp import web

from ..errors import ConfigError

_TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version", "cipher_suites", "curve_preferences", "prefer_server_cipher_suites"}
_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1, "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_DUMMY_HASH = bcrypt.hashpw(b"dummy", bcrypt.gensalt(rounds=4))
_CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "RequestClientCert": ssl.CERT_OPTIONAL, "RequireAnyClientCert": ssl.CERT_REQUIRED, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL, "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}


@dataclass
class WebConfig:
    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash
    _verified: dict[tuple[str, bytes], bool] = field(default_factory=dict)

    def check(self, user: str, password: str) -> bool:
        """bcrypt is slow on purpose; remember outcomes (keyed by a digest, not the password)."""
        hashed = self.users.get(user)
        if hashed is None:
            bcrypt.checkpw(password.encode(), _DUMMY_HASH)  # some work for unknown users too
            return False
        key = (user, hashlib.sha256(password.encode()).digest())
        if key not in self._verified:
            self._verified[key] = bcrypt.checkpw(password.encode(), hashed)
        return self._verified[key]

    def middleware(self) -> web.middleware:
        @web.middleware
        async def basic_auth(request: web.Request, handler):
            if self.users:
                header = request.headers.get("Authorization", "")
                ok = False
                if header.startswith("Basic "):
                    try:
                        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
                        ok = self.check(user, password)
                    except (binascii.Error, UnicodeDecodeError):
                        ok = False
                if not ok:
                    return web.Response(status=401, text="Unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="dijkwacht"'})
            return await handler(request)

        return basic_auth


def load_web_config(path: Path | str | None) -> WebConfig:
    if not path:
        return WebConfig()
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read web config: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(str(path), f"invalid YAML: {exc}", line=mark.line + 1 if mark else None) from exc
    if not isinstance(raw, dict):
        raise ConfigError(str(path), "must be a mapping")
    unknown = set(raw) - {"tls_server_config", "basic_auth_users", "http_server_config"}
    if unknown:
        raise ConfigError(str(path), "unknown key", key=sorted(unknown)[0])
    config = WebConfig()
    users = raw.get("basic_auth_users") or {}
    if not isinstance(users, dict):
        raise ConfigError(str(path), "must map user names to bcrypt hashes", key="basic_auth_users")
    for user, hashed in users.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise ConfigError(str(path), f"user '{user}' needs a bcrypt hash ($2y$...)", key="basic_auth_users")
        config.users[str(user)] = hashed.encode()
    tls = raw.get("tls_server_config")
    if tls:
        config.ssl_context = _ssl_context(path, tls)
    return config


def _ssl_context(path: Path, tls: object) -> ssl.SSLContext:
    if not isinstance(tls, dict):
        raise ConfigError(str(path), "must be a mapping", key="tls_server_config")
    unknown = set(tls) - _TLS_KEYS
    if unknown:
        raise ConfigError(str(path), "unknown key", key=f"tls_server_config.{sorted(unknown)[0]}")
    for key in ("cert_file", "key_file"):
        if not tls.get(key):
            raise ConfigError(str(path), "is required for TLS", key=f"tls_server_config.{key}")
    base = path.parent

    def resolve(name: str) -> str:
        return str(base / name) if not Path(name).is_absolute() else name

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS.get(str(tls.get("min_version", "TLS12")), ssl.TLSVersion.TLSv1_2)
    try:
        context.load_cert_chain(resolve(tls["cert_file"]), resolve(tls["key_file"]))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(str(path), f"cannot load certificate/key: {exc}", key="tls_server_config.cert_file") from exc
    auth = tls.get("client_auth_type", "NoClientCert")
    if auth not in _CLIENT_AUTH:
        raise ConfigError(str(path), f"must be one of {sorted(_CLIENT_AUTH)}", key="tls_server_config.client_auth_type")
    context.verify_mode = _CLIENT_AUTH[auth]
    if tls.get("client_ca_file"):
        context.load_verify_locations(resolve(tls["client_ca_file"]))
    return context
