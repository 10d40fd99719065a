"""Outbound HTTP to customer-chosen URLs (status callbacks, media): the SSRF guard.

Every request resolves its host once, refuses it unless every address is public (or inside
``MYCPAAS_OUTBOUND_ALLOW_CIDRS``), then connects to the very address that was checked, with
the original Host header and TLS server name. Redirects are never followed here.

    OutboundRefused      the URL's scheme, host or address is not allowed (no connection made)
"""

import ipaddress
import socket
import ssl
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


def prompt_transport(tls: ssl.SSLContext | None = None) -> httpx.HTTPTransport:
    """httpx's transport with Nagle's algorithm off (see ``NO_DELAY``); ``tls`` shares one TLS
    context among many transports (each new one loads the CA bundle)."""
    return httpx.HTTPTransport(socket_options=NO_DELAY, verify=tls or True)


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


def checked_address(
    url: httpx.URL, resolver: Resolver, allow: Sequence[Network] | None = None
) -> str:
    """The one address to connect to for ``url``, or OutboundRefused."""
    if url.scheme not in ("http", "https") or not url.host:
        raise OutboundRefused(f"only http(s) URLs with a host are allowed: {url}")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        candidates = [ipaddress.ip_address(url.host)]
    except ValueError:
        try:
            candidates = [ipaddress.ip_address(a.split("%")[0]) for a in resolver(url.host, port)]
        except UnicodeError as exc:
            raise OutboundRefused(f"not a valid host name {url.host}: {exc}") from exc
        except OSError as exc:  # DNS may be down for a moment: a connect error, retried
            raise httpx.ConnectError(f"cannot resolve {url.host}: {exc}") from exc
    if not candidates:
        raise OutboundRefused(f"{url.host} has no address")
    if allow is None:
        allow = allowed_networks(get_settings().outbound_allow_cidrs)
    refused = [str(a) for a in candidates if not is_allowed(a, allow)]
    if refused:  # one bad address is enough: DNS may hand out any of them next time
        raise OutboundRefused(f"{url.host} resolves to a non-public address {refused[0]}")
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
        address = checked_address(request.url, self._resolver, self._allow)
        if address != request.url.host:
            request.extensions = {**request.extensions, "sni_hostname": request.url.host}
            request.url = request.url.copy_with(host=address)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()
