"""Kernel egress rules of one worker: nftables, keyed on the worker's own uid.

Seccomp decides whether a worker may open an AF_INET socket at all and Landlock which TCP
ports it may connect to; neither sees the destination address. Where the appliance may
manage the firewall (root, or CAP_NET_ADMIN) and the worker has a uid of its own, one table
per worker lets that uid reach exactly the granted ``host:port`` pairs (the host resolves
names when the worker starts) and rejects everything else it sends, UDP included::

    table inet pafw_<worker> {
        chain worker {
            ip daddr 192.0.2.10 tcp dport 587 accept
            meta l4proto tcp counter reject with tcp reset
            counter reject
        }
        chain out {
            type filter hook output priority 0; policy accept;
            meta skuid <uid> jump worker
        }
    }

Packets the kernel sends without a socket of the worker's (a listener's SYN-ACK on
loopback) never match ``meta skuid`` and pass.

Without nft or the privilege, :func:`available` says why and the grant is enforced by port
(Landlock) only; the status shows which.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from dataclasses import dataclass

NFT_TIMEOUT_S = 10.0


class EgressError(OSError):
    """Raised when nft refuses the worker's table."""


@dataclass(frozen=True)
class Destination:
    """One granted address and TCP port."""

    address: str
    port: int


def nft_path() -> str | None:
    """The nft binary (in /usr/sbin, which a service's PATH may lack)."""
    return shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")


def available(can_manage: bool) -> tuple[bool, str]:
    """Whether per-worker tables can be installed, and why not."""
    if not can_manage:
        return False, "needs root or CAP_NET_ADMIN"
    if nft_path() is None:
        return False, "nft is not installed (Debian package nftables)"
    return True, ""


def table_name(worker: str) -> str:
    """The nftables table of one worker (letters, digits and _ only)."""
    return "pafw_" + "".join(c if c.isalnum() else "_" for c in worker)[:200]


def ruleset(worker: str, uid: int, destinations: list[Destination]) -> str:
    """The nft script that creates (or replaces) the worker's table."""
    name = table_name(worker)
    lines = [f"table inet {name} {{}}", f"delete table inet {name}",
             f"table inet {name} {{", "  chain worker {"]
    for dest in destinations:
        family = "ip6" if ipaddress.ip_address(dest.address).version == 6 else "ip"
        lines.append(f"    {family} daddr {dest.address} tcp dport {dest.port} accept")
    lines += ["    meta l4proto tcp counter reject with tcp reset", "    counter reject", "  }",
              "  chain out {",
              "    type filter hook output priority 0; policy accept;",
              f"    meta skuid {uid} jump worker", "  }", "}"]
    return "\n".join(lines) + "\n"


def install(worker: str, uid: int, destinations: list[Destination]) -> None:
    """Create the worker's table (EgressError if nft refuses)."""
    _nft(ruleset(worker, uid, destinations))


def remove(worker: str) -> None:
    """Delete the worker's table (nothing if it is gone)."""
    drop_table(table_name(worker))


def tables() -> list[str]:
    """Names of the pafw worker tables present (to sweep those of dead appliances)."""
    try:
        out = subprocess.run([nft_path() or "nft", "list", "tables", "inet"],
                             capture_output=True, text=True,
                             timeout=NFT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.split()[-1] for line in out.stdout.splitlines()
            if line.startswith("table inet pafw_")]


def drop_table(name: str) -> None:
    """Delete a table by its full name."""
    _nft(f"table inet {name} {{}}\ndelete table inet {name}\n")


def _nft(script: str) -> None:
    try:
        out = subprocess.run([nft_path() or "nft", "-f", "-"], input=script,
                             capture_output=True, text=True,
                             timeout=NFT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EgressError(f"nft failed: {exc}") from None
    if out.returncode != 0:
        raise EgressError(f"nft refused the egress table: {out.stderr.strip()[:500]}")
