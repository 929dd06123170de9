"""Sentry's ``request`` interface and the PII policy for every Sentry payload.

The interface (method, url without its query string, headers; never the body, never cookies)
comes from the ASGI scope for errors and from the server span's attributes for transactions.
The end user's IP and user agent stay out (headers, ``env.REMOTE_ADDR``, span data) unless
``SENTRY_SEND_DEFAULT_PII`` turns PII on. Headers are scrubbed later with the rest of the event.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

# Headers that carry the end user's address or browser: kept only with PII on.
PII_HEADERS = frozenset(
    {"x-forwarded-for", "x-real-ip", "forwarded", "true-client-ip", "cf-connecting-ip", "user-agent"}
)
# Headers never sent (sentry-sdk filters them without PII; the body and cookies are never ours to send).
NEVER_HEADERS = frozenset({"cookie", "set-cookie"})
# Span attributes naming the end user's address or user agent (server side).
PII_SPAN_KEYS = frozenset(
    {
        "client.address",
        "client.port",
        "user_agent.original",
        "http.user_agent",
        "http.client_ip",
        "net.peer.ip",
        "net.sock.peer.addr",
        "net.sock.peer.port",
    }
)
# On a server span the socket peer is the end user (or their proxy).
PII_SERVER_SPAN_KEYS = frozenset({"network.peer.address", "network.peer.port", "net.peer.port"})
# Captured request headers on spans (``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST``).
_PII_HEADER_ATTR = re.compile(
    r"^http\.request\.header\.(user[-_]agent|x[-_]forwarded[-_]for|x[-_]real[-_]ip|forwarded|true[-_]client[-_]ip"
    r"|cf[-_]connecting[-_]ip|cookie)$"
)
MAX_HEADERS = 64
FILTERED = "[Filtered]"


def _headers(raw: Iterable[tuple[bytes, bytes]], send_pii: bool) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name_bytes, value_bytes in raw:
        name = name_bytes.decode("latin-1").lower()
        if name in NEVER_HEADERS or (not send_pii and name in PII_HEADERS):
            continue
        if len(headers) >= MAX_HEADERS:
            break
        value = value_bytes.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def request_from_scope(scope: Mapping[str, Any], send_pii: bool) -> dict[str, Any]:
    """Sentry's ``request`` interface for an ASGI HTTP scope."""
    raw_headers = scope.get("headers") or ()
    headers = _headers(raw_headers, send_pii)
    scheme = str(scope.get("scheme") or "http")
    host = headers.get("host")
    if not host:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server else "localhost"
    path = str(scope.get("root_path") or "") + str(scope.get("path") or "")
    request: dict[str, Any] = {"method": str(scope.get("method") or "GET"), "url": f"{scheme}://{host}{path}"}
    if headers:
        request["headers"] = headers
    client = scope.get("client")
    if send_pii and client:
        request["env"] = {"REMOTE_ADDR": str(client[0])}
    return request


def request_from_span(attrs: Mapping[str, Any], send_pii: bool) -> dict[str, Any] | None:
    """Sentry's ``request`` interface from a server span's (stable or old) HTTP attributes."""
    method = attrs.get("http.request.method") or attrs.get("http.method")
    if not method:
        return None
    scheme = attrs.get("url.scheme") or attrs.get("http.scheme") or "http"
    host = attrs.get("server.address") or attrs.get("http.host") or attrs.get("net.host.name") or "localhost"
    port = attrs.get("server.port") or attrs.get("net.host.port")
    netloc = f"{host}:{port}" if port and f":{port}" not in str(host) else str(host)
    path = attrs.get("url.path") or attrs.get("http.target") or "/"
    request: dict[str, Any] = {"method": str(method), "url": f"{scheme}://{netloc}{str(path).split('?', 1)[0]}"}
    agent = attrs.get("user_agent.original") or attrs.get("http.user_agent")
    if send_pii:
        if agent:
            request["headers"] = {"user-agent": str(agent)}
        client = attrs.get("client.address") or attrs.get("http.client_ip")
        if client:
            request["env"] = {"REMOTE_ADDR": str(client)}
    return request


def strip_pii_span_data(data: MutableMapping[str, Any], server: bool) -> None:
    """Remove the end user's address and user agent from span data (in place)."""
    for key in PII_SPAN_KEYS:
        data.pop(key, None)
    if server:
        for key in PII_SERVER_SPAN_KEYS:
            data.pop(key, None)
    for key in [key for key in data if _PII_HEADER_ATTR.match(key)]:
        del data[key]


def pii_values(scope: Mapping[str, Any]) -> list[str]:
    """The end user's address and user agent as this request carries them (client, proxy headers)."""
    values: set[str] = set()
    client = scope.get("client")
    if client:
        values.add(str(client[0]))
    for name_bytes, value_bytes in scope.get("headers") or ():
        if name_bytes.decode("latin-1").lower() in PII_HEADERS:
            value = value_bytes.decode("latin-1").strip()
            values.add(value)
            values.update(part.strip() for part in value.split(",") if name_bytes.lower() != b"user-agent")
    # Longest first, so that a list is filtered before its parts; too short a value would mangle text.
    return sorted((v for v in values if len(v) >= 3), key=len, reverse=True)


def redact_values(value: Any, secrets: list[str], depth: int = 0) -> Any:
    """``value`` with every occurrence of ``secrets`` replaced (e.g. in stack-frame variables)."""
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, FILTERED)
        return value
    if depth > 20:
        return value
    if isinstance(value, dict):
        return {key: redact_values(item, secrets, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_values(item, secrets, depth + 1) for item in value]
    return value
