"""``mycpaas bench``: the command; the benchmark itself is the package dispatcher/bench/."""

import contextlib

import click

from dispatcher.bench.inbound import run_inbound
from dispatcher.bench.load import Options
from dispatcher.bench.platform import callback_sink, scratch_store, spawned_platform
from dispatcher.bench.run import run_bench
from dispatcher.bench.stored import fill_store
from dispatcher.bench.writes import report_bytes, report_writes, row_versions, table_bytes


@click.command()
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="The API.")
@click.option("-n", "--count", default=1000, show_default=True, help="Messages to send.")
@click.option("-c", "--concurrency", default=32, show_default=True, help="Concurrent clients.")
@click.option("--rate", type=float, default=None, help="Pace creates to this many per second.")
@click.option("--timeout", "timeout_s", default=600.0, show_default=True, help="Seconds to wait.")
@click.option("--spawn", is_flag=True, help="Start API, simulator, workers and beat for the run.")
@click.option("--latency-ms", default=0.0, show_default=True, help="Simulator latency (--spawn).")
@click.option("--carriers", default=1, show_default=True, help="Carrier workers (--spawn).")
@click.option(
    "--callbacks", "sink_port", type=int, default=None, metavar="PORT",
    help="A StatusCallback on every message, to a local sink on this port; reports arrivals.",
)  # fmt: skip
@click.option("--bulk", "bulk_size", default=0, show_default=True,
              help="Messages per bulk create (…/Messages/Bulk); 0: one create each.")  # fmt: skip
@click.option("--segments", default=1, show_default=True,
              help="GSM-7 parts per message (a multipart body from 2).")  # fmt: skip
@click.option(
    "--carrier",
    type=click.Choice(["simulator", "smpp"]),
    default="simulator",
    show_default=True,
    help="How the workers reach the simulator (--spawn).",
)
@click.option("--carrier-threads", type=int, default=None, help="Threads per carrier worker.")
@click.option(
    "--backlog",
    is_flag=True,
    help="Start the carrier workers once every message is accepted and segmented (--spawn): "
    "the carrier figure then measures the carrier stage alone.",
)
@click.option(
    "--inbound",
    is_flag=True,
    help="Handsets text the platform instead (--spawn --carrier smpp --callbacks PORT): MO "
    "over SMPP to a number whose webhook is the sink; MO per second end to end, CPU per MO.",
)
@click.option(
    "--stored",
    default=0,
    show_default=True,
    help="Settled messages the scratch store holds before the run (--spawn).",
)
@click.option(
    "--warmup",
    type=int,
    default=None,
    help="Messages sent first at the same pace and left out of every figure but the writes "
    "(default: two seconds' worth with --rate, none without): a paced run measures the steady "
    "state, not the processes' first statements and connections.",
)
def bench(
    url: str, count: int, concurrency: int, rate: float | None, timeout_s: float, spawn: bool,
    latency_ms: float, carriers: int, sink_port: int | None, bulk_size: int, segments: int,
    carrier: str, carrier_threads: int | None, backlog: bool, inbound: bool, stored: int,
    warmup: int | None,
) -> None:  # fmt: skip
    """Drive messages through the API; report throughput and latency to sent and delivered."""
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(callback_sink(sink_port)) if sink_port else None
        if warmup is None:
            warmup = round(2 * rate) if rate and not (backlog or inbound) else 0
        options = Options(count, concurrency, rate, timeout_s, sink, bulk_size, segments, warmup)
        if inbound and not (spawn and carrier == "smpp" and sink):
            raise click.UsageError("--inbound needs --spawn --carrier smpp --callbacks PORT")
        if not spawn:
            if stored:
                raise click.UsageError("--stored fills the scratch store of --spawn; add --spawn")
            run_bench(url, options)
            return
        stack.enter_context(scratch_store())
        if stored:
            fill_store(stored)
        port = int(url.rsplit(":", 1)[1])
        before, sizes = row_versions(), table_bytes()
        with spawned_platform(port, port + 100, latency_ms, carriers, carrier, backlog,
                              carrier_threads) as spawned:  # fmt: skip
            if inbound:
                run_inbound(f"http://127.0.0.1:{port + 100}", options, spawned.sessions)
                return
            run_bench(spawned.api, options, spawned.sessions, spawned.start_carriers)
        report_writes(before, count + warmup)
        report_bytes(sizes, count + warmup)
