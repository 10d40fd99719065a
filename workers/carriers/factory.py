"""Building a worker's carrier drivers: from the carriers file's connections, or from the
single-carrier settings (``MYCPAAS_CARRIER``, ``MYCPAAS_MMS_CARRIER``) as connections named
``default`` and ``mms``."""

from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache

from schemas.carriers import CARRIES, Connection, Plan
from schemas.carriers import load as load_carriers
from schemas.settings import Settings
from workers.carriers.base import CarrierDriver
from workers.carriers.http import HttpCarrierDriver
from workers.carriers.simulator import SimulatorCarrierDriver
from workers.carriers.smpp.answers import AcceptedSink
from workers.carriers.smpp.bind import BindConfig
from workers.carriers.smpp.driver import SmppCarrierDriver, SmppConfig
from workers.carriers.smpp.receipts import ReceiptSink
from workers.pipeline.throttle import TokenBucket

DRIVERS: dict[str, type[HttpCarrierDriver] | type[SimulatorCarrierDriver]] = {
    "simulator": SimulatorCarrierDriver,
    "http": HttpCarrierDriver,
}


def make_driver(
    kind: str, base_url: str, timeout_s: float, *, token: str | None = None
) -> CarrierDriver:
    """An HTTP driver of ``kind`` ("simulator" or "http"); the caller closes it at shutdown."""
    try:
        driver_class = DRIVERS[kind]
    except KeyError:
        raise ValueError(
            f"unknown carrier driver {kind!r}; expected one of {sorted(DRIVERS)}"
        ) from None
    return driver_class(base_url, timeout_s, token=token)


def smpp_config(settings: Settings) -> SmppConfig:
    # A hand-off gets its parts out within the timeout and waits as long again for the last
    # answer: capped at a third of the lease, it always ends (and records) inside its lease.
    timeout_s = min(settings.carrier_timeout_s, settings.sending_lease_s / 3)
    bind = BindConfig(
        host=settings.smpp_host,
        port=settings.smpp_port,
        system_id=settings.smpp_system_id,
        password=settings.smpp_password,
        system_type=settings.smpp_system_type,
        window=settings.smpp_window,
        enquire_link_s=settings.smpp_enquire_link_s,
        timeout_s=timeout_s,
        tls=settings.smpp_tls,
    )
    return SmppConfig(
        bind=bind,
        mode=settings.smpp_bind,
        tps=settings.smpp_tps,
        unknown_outcome=settings.smpp_unknown_outcome,
        hex_ids=settings.smpp_hex_ids,
        tps_key=f"{settings.smpp_host}:{settings.smpp_port}:{settings.smpp_system_id}",
    )


def plan_of(settings: Settings) -> Plan:
    """The connections and routes this deployment has: its carriers file's, or the
    single-carrier settings' (``default``, and ``mms`` when MYCPAAS_MMS_CARRIER is set)."""
    if settings.carriers_file:
        return _file_plan(settings.carriers_file)
    connections = {"default": Connection("default", settings.carrier, {},
                                         frozenset(CARRIES[settings.carrier]))}  # fmt: skip
    if settings.mms_carrier:
        connections["mms"] = Connection("mms", settings.mms_carrier, {},
                                        frozenset(CARRIES[settings.mms_carrier]))  # fmt: skip
    return Plan(connections)


@lru_cache(maxsize=4)
def _file_plan(path: str) -> Plan:
    """The carriers file, read once per process (its settings checked it at start; workers
    read it at start only: docs/carriers.md)."""
    return load_carriers(path)


SmppParts = Callable[[str], tuple[ReceiptSink, TokenBucket | None, AcceptedSink, ReceiptSink]]


def make_connection_driver(
    settings: Settings, connection: Connection, smpp_parts: SmppParts
) -> CarrierDriver:
    """The driver of one connection; its settings fall back to the MYCPAAS_ ones. An SMPP
    driver gets from ``smpp_parts(name)`` its receipt and MO sinks, bucket and recorder."""
    given = connection.settings
    if connection.driver != "smpp":
        return make_driver(connection.driver, given.get("url", settings.carrier_url),
                           given.get("timeout_s", settings.carrier_timeout_s),
                           token=given.get("token"))  # fmt: skip
    config = smpp_config(settings)
    bind_keys = ("host", "port", "system_id", "password", "system_type", "window",
                 "enquire_link_s", "tls")  # fmt: skip
    bind = replace(config.bind, **{key: given[key] for key in bind_keys if key in given})
    config = replace(
        config, bind=bind, mode=given.get("bind", config.mode), tps=given.get("tps", config.tps),
        unknown_outcome=given.get("unknown_outcome", config.unknown_outcome),
        hex_ids=given.get("hex_ids", config.hex_ids), name=connection.name,
        tps_key=f"{bind.host}:{bind.port}:{bind.system_id}",
    )  # fmt: skip
    on_receipts, bucket, on_accepted, on_inbound = smpp_parts(connection.name)
    return SmppCarrierDriver(config, on_receipts, bucket, on_accepted, on_inbound)
