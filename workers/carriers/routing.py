"""Choosing the connection a message leaves by: the first route that matches it, then the
route's action among the connections that are healthy and can carry it.

A message's segments all leave by one connection (the parts of a long SMS must reach one SMSC
to be joined). ``weighted`` spreads messages by smooth weighted round robin, so any run of
messages is split as the weights say, within one message per connection; ``failover`` takes
the first healthy connection in its order. A connection is unhealthy while its binds are down
or it refuses our credentials (SMPP), or for ``RETRY_DOWN_S`` after a hand-off could not reach
it; traffic returns by itself once it is healthy again. Nothing routes a segment that was
handed to one connection to another: only what no connection took yet is routed again.

With no routes in the carriers file, a message goes to the first connection that can carry it:
``default`` first (``MYCPAAS_CARRIER``), then the others by name (``mms``:
``MYCPAAS_MMS_CARRIER``), so the single-carrier settings keep working as they did.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from schemas.carriers import Connection, Route
from schemas.phone import country_of

RETRY_DOWN_S = 10.0  # after a hand-off found a connection unreachable, leave it this long
IMPLICIT = "implicit"  # the route name when the file has none
NO_ROUTE = 21612  # Twilio: the 'To' cannot be reached by any route this platform has


@dataclass(frozen=True)
class Message:
    """What routing looks at."""

    to: str
    from_: str
    mms: bool
    account_sid: str
    service_sid: str | None = None


@dataclass(frozen=True)
class Choice:
    route: str
    connection: str


class Router:
    def __init__(
        self, connections: dict[str, Connection], routes: tuple[Route, ...],
        healthy: Callable[[str], bool] = lambda _: True,
    ) -> None:  # fmt: skip
        self._connections = {n: c for n, c in connections.items() if c.enabled}
        self._routes = routes or (self._implicit(),)
        self._healthy = healthy
        self._down_until: dict[str, float] = {}
        self._credit: dict[tuple[int, str], int] = {}  # smooth weighted round robin's state
        self._countries = any(route.countries for route in self._routes)

    def _implicit(self) -> Route:
        names = sorted(self._connections, key=lambda name: (name != "default", name))
        return Route(IMPLICIT, mode="failover", connections=tuple(names))

    def unreachable(self, name: str) -> None:
        """A hand-off could not reach ``name``: route around it for a while."""
        self._down_until[name] = time.monotonic() + RETRY_DOWN_S

    def is_healthy(self, name: str) -> bool:
        until = self._down_until.get(name)
        if until is not None and time.monotonic() < until:
            return False
        return self._healthy(name)

    def choose(self, message: Message) -> Choice | None:
        """The route and connection for ``message``; None when no route can carry it."""
        kind = "mms" if message.mms else "sms"
        country = _country(message.to) if self._countries else None
        for index, route in enumerate(self._routes):
            if not _matches(route, message, kind, country):
                continue
            able = [n for n in route.connections
                    if n in self._connections and kind in self._connections[n].carries]  # fmt: skip
            if not able:
                continue  # this route cannot carry it: a later one may
            if route.mode == "weighted":
                return Choice(route.name, self._weighted(index, route, able))
            healthy = [name for name in able if self.is_healthy(name)]
            return Choice(route.name, (healthy or able)[0])
        return None

    def _weighted(self, index: int, route: Route, able: list[str]) -> str:
        """Smooth weighted round robin over the healthy ones (all, if none is)."""
        healthy = [name for name in able if self.is_healthy(name)] or able
        weights = dict(zip(route.connections, route.weights, strict=True))
        total = sum(weights[name] for name in healthy)
        for name in healthy:
            self._credit[index, name] = self._credit.get((index, name), 0) + weights[name]
        best = max(healthy, key=lambda name: self._credit[index, name])
        self._credit[index, best] -= total
        return best


def _matches(route: Route, message: Message, kind: str, country: str | None) -> bool:
    if route.kind is not None and route.kind != kind:
        return False
    if route.prefixes and not message.to.startswith(route.prefixes):
        return False
    if route.countries and country not in route.countries:
        return False
    if route.accounts and message.account_sid not in route.accounts:
        return False
    return not route.senders or bool({message.from_, message.service_sid} & route.senders)


@lru_cache(maxsize=65_536)
def _country(number: str) -> str | None:
    return country_of(number)
