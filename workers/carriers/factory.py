"""Choosing a carrier driver by name (``MYCPAAS_CARRIER``)."""

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


def make_smpp_driver(
    settings: Settings,
    on_receipts: ReceiptSink,
    bucket: TokenBucket | None,
    on_accepted: AcceptedSink | None = None,
    on_inbound: ReceiptSink | None = None,
) -> SmppCarrierDriver:
    """The SMPP session of this process; it binds in the background and closes at shutdown."""
    return SmppCarrierDriver(smpp_config(settings), on_receipts, bucket, on_accepted, on_inbound)
