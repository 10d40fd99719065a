"""The carriers file (``MYCPAAS_CARRIERS_FILE``): named carrier connections and the ordered
routes that pick one for each message. TOML, or YAML for a name ending ``.yaml``/``.yml``::

    [carriers.aggregator]          # an SMPP bind
    driver = "smpp"
    host = "smsc.example.net"
    port = 2775
    system_id = "acme"
    password = "secret"
    tps = 50

    [carriers.gateway]             # an HTTP gateway, which carries MMS too
    driver = "http"
    url = "https://gateway.example.net"
    carries = ["sms", "mms"]

    [[routes]]                     # the first route that matches picks the connection
    name = "germany"
    prefix = ["+49"]
    weighted = { aggregator = 70, gateway = 30 }

    [[routes]]
    name = "rest"
    failover = ["aggregator", "gateway"]

A route matches on ``prefix`` (E.164), ``country`` (ISO 3166 alpha-2), ``kind`` (``sms`` or
``mms``), ``sender`` (numbers, alphanumeric ids, Messaging Service sids) and ``account``
(``AC…``); each given condition must hold, a list matching any of its values. Its action is one
of ``carrier`` (one connection), ``weighted`` (connection → weight) or ``failover`` (in order,
the first healthy one). Read when a process starts: a file that cannot work stops it with the
line it is wrong at.
"""

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DRIVERS = ("smpp", "http", "simulator")
KINDS = ("sms", "mms")
CARRIES = {"smpp": ("sms",), "http": ("sms", "mms"), "simulator": ("sms", "mms")}
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
SMPP_KEYS = {"host": str, "port": int, "system_id": str, "password": str, "system_type": str,
             "bind": str, "window": int, "tps": float, "tls": bool, "enquire_link_s": float,
             "unknown_outcome": str, "hex_ids": str}  # fmt: skip
HTTP_KEYS = {"url": str, "token": str, "timeout_s": float}
COMMON_KEYS = {"driver": str, "carries": list, "enabled": bool}
MATCH_KEYS = ("prefix", "country", "kind", "sender", "account")
ACTION_KEYS = ("carrier", "weighted", "failover")
LIMITS = {"system_id": 15, "password": 8, "system_type": 12}  # SMPP 3.4's C-Octet Strings


class CarriersFileError(ValueError):
    """The file cannot work; the message names the file, the line and the rule."""


@dataclass(frozen=True)
class Connection:
    name: str
    driver: str
    settings: dict[str, Any]
    carries: frozenset[str]
    enabled: bool = True


@dataclass(frozen=True)
class Route:
    name: str
    prefixes: tuple[str, ...] = ()
    countries: frozenset[str] = frozenset()
    kind: str | None = None
    senders: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()
    mode: str = "carrier"  # carrier | weighted | failover
    connections: tuple[str, ...] = ()
    weights: tuple[int, ...] = ()


@dataclass(frozen=True)
class Plan:
    connections: dict[str, Connection]
    routes: tuple[Route, ...] = field(default=())


def load(path: str | Path) -> Plan:
    """Read and check the file; raises :class:`CarriersFileError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CarriersFileError(f"{path}: cannot be read: {exc.strerror}") from None
    lines = _Lines(path, text)
    document = lines.parse()
    if not isinstance(document, dict):
        raise CarriersFileError(f"{path}: expected tables 'carriers' and 'routes'")
    lines.unknown(document, {"carriers", "routes"}, "the file", None)
    carriers = document.get("carriers") or {}
    if not isinstance(carriers, dict) or not carriers:
        raise CarriersFileError(f"{path}: at least one connection under 'carriers' is needed")
    connections = {name: _connection(lines, name, spec) for name, spec in carriers.items()}
    routes = document.get("routes") or []
    if not isinstance(routes, list):
        raise CarriersFileError(f"{path}: 'routes' must be a list of tables")
    return Plan(connections, tuple(_route(lines, n, spec, connections)
                                   for n, spec in enumerate(routes)))  # fmt: skip


class _Lines:
    """The file's text, to name the line a connection or route starts at."""

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.text = path, text
        self.yaml = path.suffix in (".yaml", ".yml")

    def parse(self) -> Any:
        try:
            if self.yaml:
                import yaml

                return yaml.safe_load(self.text)
            return tomllib.loads(self.text)
        except Exception as exc:  # both parsers say the line in their message
            raise CarriersFileError(f"{self.path}: not valid {self._kind()}: {exc}") from None

    def _kind(self) -> str:
        return "YAML" if self.yaml else "TOML"

    def line_of(self, what: str | int) -> int | None:
        """The line a connection (by name) or a route (by index) starts at."""
        if isinstance(what, str):
            pattern = (rf"^\s*{re.escape(what)}\s*:" if self.yaml
                       else rf"^\s*\[\s*carriers\.{re.escape(what)}\s*\]")  # fmt: skip
            found = [n for n, line in enumerate(self.text.splitlines(), 1)
                     if re.match(pattern, line)]  # fmt: skip
            return found[0] if found else None
        pattern = r"^\s*-\s" if self.yaml else r"^\s*\[\[\s*routes\s*\]\]"
        starts = [n for n, line in enumerate(self.text.splitlines(), 1) if re.match(pattern, line)]
        if self.yaml:  # list items under 'routes:' only
            head = next((n for n, line in enumerate(self.text.splitlines(), 1)
                         if re.match(r"^routes\s*:", line)), 0)  # fmt: skip
            starts = [n for n in starts if n > head]
        return starts[what] if what < len(starts) else None

    def error(self, what: str | int | None, message: str) -> CarriersFileError:
        line = self.line_of(what) if what is not None else None
        where = f"{self.path}, line {line}" if line else str(self.path)
        return CarriersFileError(f"{where}: {message}")

    def unknown(self, table: dict[str, Any], known: set[str], label: str,
                what: str | int | None) -> None:  # fmt: skip
        extra = sorted(set(table) - known)
        if extra:
            raise self.error(what, f"{label} has no setting {extra[0]!r} "
                                   f"(known: {', '.join(sorted(known))})")  # fmt: skip


def _connection(lines: _Lines, name: str, spec: Any) -> Connection:
    label = f"carriers.{name}"
    if not NAME.match(name):
        raise lines.error(name, f"{label}: a name is lowercase letters, digits, - and _")
    if not isinstance(spec, dict):
        raise lines.error(name, f"{label} must be a table")
    driver = spec.get("driver")
    if driver not in DRIVERS:
        raise lines.error(name, f"{label}.driver must be one of {', '.join(DRIVERS)}")
    keys = {**COMMON_KEYS, **(SMPP_KEYS if driver == "smpp" else HTTP_KEYS)}
    lines.unknown(spec, set(keys), label, name)
    for key, kind in keys.items():
        value = spec.get(key)
        if value is None:
            continue
        ok = isinstance(value, kind) or (kind is float and isinstance(value, int))
        if not ok or (kind is int and isinstance(value, bool)):
            raise lines.error(name, f"{label}.{key} must be {kind.__name__}, not {value!r}")
    required = ("host", "system_id") if driver == "smpp" else ("url",)
    for key in required:
        if not spec.get(key):
            raise lines.error(name, f"{label}.{key} is required for driver {driver!r}")
    for key, limit in LIMITS.items():
        if len(spec.get(key) or "") > limit:
            raise lines.error(name, f"{label}.{key} is longer than {limit} characters (SMPP 3.4)")
    if driver != "smpp" and not re.match(r"^https?://[^/\s]+", spec["url"]):
        raise lines.error(name, f"{label}.url must be an http(s) URL")
    carries = spec.get("carries", list(CARRIES[driver]))
    if not carries or any(kind not in KINDS for kind in carries):
        raise lines.error(name, f"{label}.carries lists {', '.join(KINDS)}")
    if "mms" in carries and driver == "smpp":
        raise lines.error(name, f"{label}: SMPP cannot carry MMS")
    settings = {k: v for k, v in spec.items() if k not in COMMON_KEYS}
    return Connection(name, driver, settings, frozenset(carries), spec.get("enabled", True))


def _listed(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise TypeError
    return tuple(values)


def _route(lines: _Lines, index: int, spec: Any, connections: dict[str, Connection]) -> Route:
    label = f"routes[{index}]"
    if not isinstance(spec, dict):
        raise lines.error(index, f"{label} must be a table")
    lines.unknown(spec, {"name", *MATCH_KEYS, *ACTION_KEYS}, label, index)
    name = str(spec.get("name") or f"route {index + 1}")
    try:
        prefixes, countries, senders, accounts = (
            _listed(spec.get(key)) for key in ("prefix", "country", "sender", "account")
        )
    except TypeError:
        raise lines.error(index, f"{label}: prefix, country, sender and account are a string "
                                 "or a list of strings") from None  # fmt: skip
    if any(not re.match(r"^\+\d{1,15}$", prefix) for prefix in prefixes):
        raise lines.error(index, f'{label}.prefix: E.164 prefixes, like "+49"')
    if any(not re.match(r"^[A-Z]{2}$", country) for country in countries):
        raise lines.error(index, f'{label}.country: ISO 3166 codes, like "DE"')
    kind = spec.get("kind")
    if kind is not None and kind not in KINDS:
        raise lines.error(index, f"{label}.kind is sms or mms")
    actions = [key for key in ACTION_KEYS if key in spec]
    if len(actions) != 1:
        raise lines.error(index, f"{label} needs exactly one of carrier, weighted, failover")
    mode, value = actions[0], spec[actions[0]]
    weights: tuple[int, ...] = ()
    if mode == "carrier" and isinstance(value, str):
        targets: tuple[str, ...] = (value,)
    elif mode == "failover" and isinstance(value, list) and value:
        targets = tuple(str(v) for v in value)
    elif mode == "weighted" and isinstance(value, dict) and value:
        targets = tuple(value)
        weights = tuple(value.values())
        if not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in weights):
            raise lines.error(index, f"{label}.weighted: each weight is a positive integer")
    else:
        raise lines.error(index, f"{label}.{mode} is malformed")
    for target in targets:
        if target not in connections:
            raise lines.error(index, f"{label} names no connection {target!r}")
        if kind is not None and kind not in connections[target].carries:
            raise lines.error(index, f"{label}: {target!r} cannot carry {kind.upper()}")
    return Route(name, prefixes, frozenset(countries), kind, frozenset(senders),
                 frozenset(accounts), mode, targets, weights)  # fmt: skip
