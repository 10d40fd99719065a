"""Choosing a carrier driver by name (``MYCPAAS_CARRIER``)."""

from workers.carriers.base import CarrierDriver
from workers.carriers.http import HttpCarrierDriver
from workers.carriers.simulator import SimulatorCarrierDriver

DRIVERS: dict[str, type[HttpCarrierDriver] | type[SimulatorCarrierDriver]] = {
    "simulator": SimulatorCarrierDriver,
    "http": HttpCarrierDriver,
}


def make_driver(
    kind: str, base_url: str, timeout_s: float, *, token: str | None = None
) -> CarrierDriver:
    """A driver of ``kind`` ("simulator" or "http"); the caller closes it at shutdown."""
    try:
        driver_class = DRIVERS[kind]
    except KeyError:
        raise ValueError(
            f"unknown carrier driver {kind!r}; expected one of {sorted(DRIVERS)}"
        ) from None
    return driver_class(base_url, timeout_s, token=token)
