"""Outbound HTTP to customer-chosen URLs (status callbacks, media): the SSRF guard.

Every request resolves its host once, refuses it unless every address is public (or inside
``MYCPAAS_OUTBOUND_ALLOW_CIDRS``), then connects to the very address that was checked, with
the original Host header and TLS server name. Redirects are never followed here.

    OutboundRefused      the URL's scheme, host or address is not allowed (no connection made)
    Unresolvable         its name did not resolve (no connection made; worth a retry)
"""

import ipaddress
import socket
from collections.abc import Callable, Sequence
from functools import lru_cache

import httpx

from schemas.settings import get_settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

# Never reachable from customer URLs, whatever DNS says (IANA special-purpose registries).
BLOCKED_NETWORKS: tuple[Network, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
        "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
        "255.255.255.255/32", "::/128", "::1/128", "64:ff9b::/96", "64:ff9b:1::/48",
        "100::/64", "2001::/23", "2001:db8::/32", "fc00::/7", "fe80::/10", "ff00::/8",
    )
)  # fmt: skip


# Send small writes at once. httpx writes a request's head and its body apart; with Nagle's
# algorithm on, the body waits for the peer to acknowledge the head, which a delayed-ACK peer
# does after 40 ms: measured, a local receiver's callbacks took 42-46 ms instead of 1-2 ms.
NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def prompt_transport() -> httpx.HTTPTransport:
    """httpx's transport with Nagle's algorithm off (see ``NO_DELAY``)."""
    return httpx.HTTPTransport(socket_options=NO_DELAY)


class OutboundRefused(Exception):
    """The destination is not allowed; nothing was sent."""


@lru_cache
def allowed_networks(setting: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c.strip()) for c in setting.split(",") if c.strip())


def is_allowed(address: Address, allow: Sequence[Network]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if any(address in network for network in allow):
        return True
    return not any(address in network for network in BLOCKED_NETWORKS)


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class Unresolvable(OSError):
    """The destination's name did not resolve (DNS may be down for a moment): retry later."""


def checked_address(
    scheme: str, host: str, port: int, resolver: Resolver,
    allow: Sequence[Network] | None = None,
) -> str:  # fmt: skip
    """The one address to connect to for ``scheme://host:port``, or OutboundRefused."""
    if scheme not in ("http", "https") or not host:
        raise OutboundRefused(f"only http(s) URLs with a host are allowed: {scheme}://{host}")
    try:
        candidates = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            candidates = [ipaddress.ip_address(a.split("%")[0]) for a in resolver(host, port)]
        except UnicodeError as exc:
            raise OutboundRefused(f"not a valid host name {host}: {exc}") from exc
        except OSError as exc:
            raise Unresolvable(f"cannot resolve {host}: {exc}") from exc
    if not candidates:
        raise OutboundRefused(f"{host} has no address")
    if allow is None:
        allow = allowed_networks(get_settings().outbound_allow_cidrs)
    refused = [str(a) for a in candidates if not is_allowed(a, allow)]
    if refused:  # one bad address is enough: DNS may hand out any of them next time
        raise OutboundRefused(f"{host} resolves to a non-public address {refused[0]}")
    return str(candidates[0])


class GuardedTransport(httpx.BaseTransport):
    """Checks every request's destination, then sends it to the checked address."""

    def __init__(
        self,
        inner: httpx.BaseTransport | None = None,
        resolver: Resolver = system_resolver,
        allow: Sequence[Network] | None = None,  # None: MYCPAAS_OUTBOUND_ALLOW_CIDRS
    ) -> None:
        self._inner = inner or prompt_transport()
        self._resolver = resolver
        self._allow = allow

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            address = checked_address(url.scheme, url.host, port, self._resolver, self._allow)
        except Unresolvable as exc:  # a connect error, retried like any other
            raise httpx.ConnectError(str(exc)) from exc
        if address != request.url.host:
            request.extensions = {**request.extensions, "sni_hostname": request.url.host}
            request.url = request.url.copy_with(host=address)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()
