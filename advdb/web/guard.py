"""Who may talk to ``advdb ui``: the Host header checked against the names the server answers
to (a page on another site that rebinds its own name to this address — DNS rebinding — is
refused, even on 127.0.0.1), and, beyond 127.0.0.1 or when one is given, a token.

The token is accepted once as ``?token=…`` (the answer is a redirect to the same page without
it, setting an HttpOnly, SameSite=Strict cookie, so it leaves the address bar and never goes
out in a Referer), as that cookie afterwards, or as ``Authorization: Bearer …``.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD = frozenset({"0.0.0.0", "::", ""})
COOKIE = "advdb_ui_token"


def needs_token(host: str) -> bool:
    """Whether serving on ``host`` needs a token: anything but this machine's loopback does."""
    return host.strip("[]").lower() not in LOOPBACK


def new_token() -> str:
    return secrets.token_urlsafe(24)


def host_names(host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The Host names accepted when bound to ``host``: it, this machine's loopback names, its own
    names when bound to every address, and ``extra`` (``--allowed-host``)."""
    names = set(LOOPBACK) | {h.strip().strip("[]").lower() for h in extra if h.strip()}
    bound = host.strip("[]").lower()
    if bound in WILDCARD:
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    else:
        names.add(bound)
    return frozenset(names)


def _host_of(header: str) -> str:
    """``example.org`` of ``example.org:8765``; ``::1`` of ``[::1]:8765``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Access:
    """What the guard lets in: Host names (any IP address too when bound to every address) and the token."""

    names: frozenset[str]
    any_ip: bool
    token: str | None

    @classmethod
    def for_host(cls, host: str, *, token: str | None, allowed_hosts: Iterable[str] = ()) -> Access:
        return cls(host_names(host, allowed_hosts), host.strip("[]").lower() in WILDCARD, token)

    def host_ok(self, header: str) -> bool:
        name = _host_of(header)
        return name in self.names or (self.any_ip and _is_ip(name))

    def token_ok(self, given: str | None) -> bool:
        return self.token is None or (given is not None and secrets.compare_digest(given, self.token))


class Guard:
    """ASGI middleware: 403 for a foreign Host header or a missing/wrong token."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # no route speaks it
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if not self.access.host_ok(headers.get("host", "")):
            await _plain(
                send, 403, "advdb ui: this Host header is not served here (advdb ui --allowed-host NAME adds one)"
            )
            return
        if self.access.token is None:
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        in_query = [v for k, v in query if k == "token"]
        if in_query and self.access.token_ok(in_query[-1]):
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            location = scope.get("root_path", "") + scope["path"] + (f"?{rest}" if rest else "")
            cookie = f"{COOKIE}={self.access.token}; Path=/; HttpOnly; SameSite=Strict"
            await _plain(send, 303, "see other", [(b"location", location.encode()), (b"set-cookie", cookie.encode())])
            return
        if self.access.token_ok(_bearer(headers.get("authorization"))) or self.access.token_ok(
            _cookie(headers.get("cookie"))
        ):
            await self.app(scope, receive, send)
            return
        await _plain(
            send,
            403,
            "advdb ui: a token is needed: open the address advdb ui printed (…/?token=…) or send "
            "Authorization: Bearer <token>",
        )


def _bearer(header: str | None) -> str | None:
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


def _cookie(header: str | None) -> str | None:
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # noqa: BLE001 - a malformed Cookie header is no token
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


async def _plain(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = (text + "\n").encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
