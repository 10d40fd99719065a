"""The list query seen from inside: its Postgres plans, and where one list call's time goes.

For ``bench_list.py``: the plans (custom and generic) of deep keyset pages, with the SQL
captured from ``dispatcher.api.messages.listing.fetch_page`` itself, and a split of one list
call run in this process into database + ORM, rendering and JSON.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import psycopg
from api_bench import percentile
from psycopg import sql


def profile(
    db_url: str, account: str, deep_token_uris: dict[str, str]
) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, float]]]:
    """The plans of each deep keyset page (by filter), and the time split of the unfiltered one
    at page sizes 50 and 1000 (by scenario)."""
    plans = {}
    for name, uri in deep_token_uris.items():
        query = dict(parse_qsl(urlsplit(uri).query))
        plans[name] = explain_plans(db_url, account, query)
    deep = dict(parse_qsl(urlsplit(deep_token_uris["none"]).query))
    breakdown_ms = {}
    for size in ("50", "1000"):
        name = f"keyset_mid_ps{size}"
        breakdown_ms[name] = breakdown(account, {**deep, "PageSize": size}, 20)
    return plans, breakdown_ms


def capture_list_sql(account: str, params: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """The exact SQL and parameters ``dispatcher.api.messages.listing.fetch_page`` sends for
    ``params``."""
    from sqlalchemy import event

    from dispatcher.api.messages.listing import fetch_page, parse_list_query
    from schemas.db import get_engine

    captured: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", grab)
    try:
        fetch_page(account, parse_list_query({k: [v] for k, v in params.items()}))
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    statement, parameters = next(c for c in reversed(captured) if "FROM messages" in c[0])
    return statement, dict(parameters)


def explain_plans(db_url: str, account: str, params: dict[str, str]) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the list query, as a custom and as a generic plan.

    psycopg prepares a statement server-side after it ran 5 times on a connection, and
    Postgres may then switch to a generic plan; both must use the index.
    """
    statement, parameters = capture_list_sql(account, params)
    names: list[str] = []

    def positional(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    numbered = re.sub(r"%\((\w+)\)s", positional, statement)
    values = [parameters[name] for name in names]
    placeholders = sql.SQL(", ").join(sql.Literal(v) for v in values)
    plans: dict[str, str] = {"sql": statement, "params": repr(values)}
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("PREPARE bench_list AS {}").format(sql.SQL(numbered)))  # type: ignore[arg-type]
        for mode in ("force_custom_plan", "force_generic_plan"):
            conn.execute(sql.SQL("SET plan_cache_mode = {}").format(sql.Literal(mode)))
            query = sql.SQL("EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_list ({})").format(
                placeholders
            )
            rows = conn.execute(query).fetchall()
            plans[mode.removeprefix("force_")] = "\n".join(r[0] for r in rows)
    return plans


def breakdown(account: str, params: dict[str, str], reps: int) -> dict[str, float]:
    """Median ms of each step of one list call, run in this process (no HTTP)."""
    from fastapi.responses import JSONResponse

    from dispatcher.api.messages.listing import fetch_page, paging, parse_list_query
    from dispatcher.api.render import twilio_message, twilio_path

    steps: dict[str, list[float]] = {"db_and_orm": [], "render": [], "json": [], "total": []}
    query = parse_list_query({k: [v] for k, v in params.items()})
    for i in range(reps + 2):
        t0 = time.perf_counter()
        page = fetch_page(account, query)
        t1 = time.perf_counter()
        body: dict[str, object] = {"messages": [twilio_message(m) for m in page.messages]}
        body.update(paging(f"{twilio_path(account)}.json", page))
        t2 = time.perf_counter()
        JSONResponse(body)
        t3 = time.perf_counter()
        if i >= 2:
            for name, value in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
                value_ms = value * 1000
                steps[name].append(value_ms)
    return {name: round(percentile(v, 50), 2) for name, v in steps.items()}


def plan_summary(plan: str) -> str:
    lines = plan.splitlines()
    wanted = re.compile(r"Scan|Index Cond|Filter|Sort|Limit|Planning Time|Execution Time")
    keep = [line.strip() for line in lines if wanted.search(line)]
    return "\n    ".join(keep[:10])


def plan_facts(plan: str) -> dict[str, object]:
    """The figures of a plan for the JSON line: scan nodes, sort or not, and the timings."""

    def number(label: str) -> float | None:
        match = re.search(rf"{label}: ([0-9.]+) ms", plan)
        return float(match.group(1)) if match else None

    return {
        "scans": [
            scan.strip()
            for scan in re.findall(r"((?:Index Only |Index |Seq |Bitmap Heap )?Scan[^(]*)\(", plan)
        ],
        "sort": "Sort" in plan,
        "planning_ms": number("Planning Time"),
        "execution_ms": number("Execution Time"),
    }
