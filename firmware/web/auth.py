"""Who may read and who may change: the network a reader comes from, the bearer token.

Reads without a token are served to loopback clients, or to LAN clients (private, link-local
and unique-local addresses) when ``web.read_access`` is ``lan``; a public address never reads
without the token. Writes always need the token: a missing one is 401 (with a
``WWW-Authenticate`` challenge), a wrong one 403, and with no token configured writes are
disabled (403). Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Literal

from firmware.web.http import HttpError, Request

ReadAccess = Literal["loopback", "lan"]


def client_network(peer: str) -> Literal["loopback", "lan", "public"]:
    """Classify a peer address (IPv4-mapped IPv6 addresses count as their IPv4 address)."""
    try:
        address = ipaddress.ip_address(peer.split("%")[0])
    except ValueError:
        return "public"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback"
    if address.is_private or address.is_link_local:
        return "lan"
    return "public"


class AccessPolicy:
    """Applies ``web.read_access`` and ``web.token`` to a request; counts refusals."""

    def __init__(self, *, read_access: ReadAccess, token: str | None) -> None:
        self.read_access = read_access
        self._token = token.encode() if token else None
        self.failures = 0

    @property
    def writes_enabled(self) -> bool:
        """False when no token is configured: every write is refused."""
        return self._token is not None

    def _presented(self, request: Request) -> bytes | None:
        header = request.headers.get("authorization")
        if header is None:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return b""
        return value.strip().encode("latin-1", "replace")

    def _token_ok(self, presented: bytes) -> bool:
        return self._token is not None and hmac.compare_digest(presented, self._token)

    def check_read(self, request: Request) -> None:
        """Allow a read from an allowed network, or from anywhere with the right token."""
        network = client_network(request.peer)
        if network == "loopback" or (network == "lan" and self.read_access == "lan"):
            return
        presented = self._presented(request)
        if presented is not None and self._token_ok(presented):
            return
        self.failures += 1
        if presented is None:
            allowed = "loopback" if self.read_access == "loopback" else "the local network"
            raise HttpError(401, "unauthorized",
                            f"reads are open to {allowed} only; send the bearer token",
                            {"WWW-Authenticate": 'Bearer realm="pafw"'})
        raise HttpError(403, "forbidden", "the bearer token is wrong")

    def check_write(self, request: Request) -> None:
        """Allow a write only with the configured token."""
        presented = self._presented(request)
        if self._token is None:
            self.failures += 1
            raise HttpError(403, "writes_disabled",
                            "write operations are disabled: no web.token is configured")
        if presented is None:
            self.failures += 1
            raise HttpError(401, "unauthorized", "this operation needs the bearer token "
                            "(Authorization: Bearer <web.token>)",
                            {"WWW-Authenticate": 'Bearer realm="pafw"'})
        if not self._token_ok(presented):
            self.failures += 1
            raise HttpError(403, "forbidden", "the bearer token is wrong",
                            {"WWW-Authenticate": 'Bearer realm="pafw", error="invalid_token"'})
