"""``mycpaas carrier-sim``: the carrier simulator (workers/simulator/) as a process of its own."""

from collections.abc import Callable
from pathlib import Path

import click

from schemas.settings import get_settings, smpp_string
from workers.simulator.server import SimulatorConfig, SmppListener, run_simulator
from workers.simulator.smsc import SmscConfig

PORT = click.IntRange(1, 65535)
AT_LEAST_0 = click.FloatRange(min=0)
ABOVE_0 = click.FloatRange(min=0, min_open=True)


def smpp_flag(name: str, max_chars: int) -> Callable[[click.Context, click.Parameter, str], str]:
    """A click callback holding a flag to SMPP 3.4's length of the field it fills (as
    ``MYCPAAS_SMPP_*`` are held by the settings)."""

    def check(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
        try:
            return smpp_string(name, max_chars, value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return check


@click.command("carrier-sim")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=PORT, default=8100, show_default=True)
@click.option("--latency-ms", type=AT_LEAST_0, default=0.0, show_default=True,
              help="Delay of each submit answer.")  # fmt: skip
@click.option("--receipt-delay-ms", type=AT_LEAST_0, default=50.0, show_default=True,
              help="Acceptance to receipt.")  # fmt: skip
@click.option("--smpp-port", type=PORT, default=None, help="Also serve SMPP 3.4 on this port.")
@click.option(
    "--smpp-throttle-tps",
    type=ABOVE_0,
    default=None,
    help="SMPP submits per second above which ESME_RTHROTTLED is answered.",
)
@click.option("--smpp-system-id", default="", callback=smpp_flag("system_id", 15),
              help="The only system_id that binds (any if empty).")  # fmt: skip
@click.option("--smpp-password", default="", callback=smpp_flag("password", 8),
              help="The only password that binds (any if empty).")  # fmt: skip
@click.option(
    "--smpp-enquire-link-s",
    type=ABOVE_0,
    default=30.0,
    show_default=True,
    help="Idle seconds before the SMSC sends its own enquire_link.",
)
@click.option(
    "--smpp-receipt-resend-s",
    type=ABOVE_0,
    default=5.0,
    show_default=True,
    help="A receipt whose deliver_sm_resp does not come is sent again after this.",
)
@click.option(
    "--journal",
    type=click.Path(path_type=Path),
    default=None,
    help="Keep SMPP submits, acceptances and receipts here, across restarts.",
)
def carrier_sim(
    host: str, port: int, latency_ms: float, receipt_delay_ms: float, smpp_port: int | None,
    smpp_throttle_tps: float | None, smpp_system_id: str, smpp_password: str,
    smpp_enquire_link_s: float, smpp_receipt_resend_s: float, journal: Path | None,
) -> None:  # fmt: skip
    """Run the carrier simulator; receipts go to MYCPAAS_PUBLIC_BASE_URL/carrier/receipts (HTTP)
    or as deliver_sm on the SMPP binds."""
    settings = get_settings()
    config = SimulatorConfig(
        receipts_url=f"{settings.public_base_url.rstrip('/')}/carrier/receipts",
        receipts_token=settings.receipts_token,
        latency_ms=latency_ms,
        receipt_delay_ms=receipt_delay_ms,
    )
    smpp = None
    if smpp_port is not None:
        smsc = SmscConfig(
            latency_ms=latency_ms, receipt_delay_ms=receipt_delay_ms,
            throttle_tps=smpp_throttle_tps, system_id=smpp_system_id, password=smpp_password,
            enquire_link_s=smpp_enquire_link_s, receipt_resend_s=smpp_receipt_resend_s,
            journal=journal,
        )  # fmt: skip
        smpp = SmppListener(host, smpp_port, smsc)
    run_simulator(config, host, port, smpp)
