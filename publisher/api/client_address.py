"""Who is calling, by address, for the audit trail: an ASGI middleware that records each
request's client address in the audit context (`publisher.audit.client_address_as`), so that
every `audit()` of the request has it without the routes passing it.

X-Forwarded-For is believed only from the proxies `PUBLISHER_TRUSTED_PROXIES` names: anyone
can send the header, so from anyone else it would let a caller write any address into the
trail.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from publisher.audit import client_address_as

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(proxies: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def is_trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], networks: Sequence[Network]
) -> str | None:
    """The client: the connecting `peer`, or, when that is a trusted proxy, the nearest
    address in X-Forwarded-For (read from the right, as each proxy appends the address it
    saw) that is not itself a trusted proxy."""
    if peer is None or not is_trusted(peer, networks):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    address = peer
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # a proxy we trust would not have written this: keep the last sure hop
        address = hop
        if not is_trusted(hop, networks):
            break
    return address


class ClientAddressMiddleware:
    """Sets the audit context's client address for each HTTP request."""

    def __init__(self, app: ASGIApp, trusted_proxies: Iterable[str] = ()) -> None:
        self.app = app
        self.networks = trusted_networks(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        forwarded = [
            value.decode("latin-1")
            for name, value in scope.get("headers", [])
            if name == b"x-forwarded-for"
        ]
        address = client_address(client[0] if client else None, forwarded, self.networks)
        with client_address_as(address):
            await self.app(scope, receive, send)
