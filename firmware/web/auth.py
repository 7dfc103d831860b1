"""Who may read and who may change: the network a reader comes from, the bearer token.

Reads without a token are served to loopback clients, or to LAN clients (``LAN_NETWORKS``:
private IPv4, link-local and unique-local addresses) when ``web.read_access`` is ``lan``; a
public address never reads without the token. Writes always need the token: a missing one
is 401 (with a ``WWW-Authenticate`` challenge), a wrong one 403, and with no token configured
writes are disabled (403). Tokens are compared in constant time. A Host header must name an
address or this appliance (DNS rebinding).
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Iterable
from typing import Literal

from firmware.web.http import HttpError, Request

ReadAccess = Literal["loopback", "lan"]

#: what "lan" means: private IPv4 ranges, IPv4 link-local, IPv6 unique-local and link-local
#: (not Python's wider ``is_private``, which also admits Teredo, 240/4, documentation nets)
LAN_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "fc00::/7",
    "fe80::/10"))


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
    if any(address in network for network in LAN_NETWORKS):
        return "lan"
    return "public"


def this_hosts_names(extra: Iterable[str] = ()) -> frozenset[str]:
    """Names a browser may use for this appliance: localhost, its host name (plain, .local
    and fully qualified) and ``extra`` (``web.allowed_hosts``), lower-case."""
    hostname = socket.gethostname().lower()
    names = {"localhost", hostname, f"{hostname}.local", socket.getfqdn().lower()}
    return frozenset(n for n in {*names, *(e.lower() for e in extra)} if n)


def host_name(header: str) -> str:
    """The host part of a Host header (without port or IPv6 brackets), lower-case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    if header.count(":") == 1:
        return header.split(":", 1)[0]
    return header


class AccessPolicy:
    """Applies ``web.read_access`` and ``web.token`` to a request; counts refusals."""

    def __init__(self, *, read_access: ReadAccess, token: str | None,
                 allowed_hosts: Iterable[str] = ()) -> None:
        self.read_access = read_access
        self._token = token.encode() if token else None
        self.host_names = this_hosts_names(allowed_hosts)
        self.failures = 0

    def check_host(self, request: Request) -> None:
        """Refuse a Host header that names neither an address nor this appliance: a web
        page that rebinds its own DNS name to the appliance's address (DNS rebinding) must
        not read the API through a LAN user's browser."""
        header = request.headers.get("host")
        if header is None:  # not a browser (HTTP/1.0 tools): nothing to rebind
            return
        name = host_name(header)
        try:
            ipaddress.ip_address(name.split("%")[0])
            return
        except ValueError:
            pass
        if name in self.host_names:
            return
        self.failures += 1
        raise HttpError(403, "host_not_allowed",
                        f"Host {name[:100]!r} is not a name of this appliance; open it by its "
                        "address or add the name to web.allowed_hosts")

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
