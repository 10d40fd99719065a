"""Routing over several carriers: the carriers file as written (TOML and YAML) and refused with
the line it is wrong at, and the router's choices: prefix, country, kind, sender, account,
weighted split, failover around an unhealthy connection, and no route at all."""

from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from dispatcher.cli.main import main
from schemas.carriers import CarriersFileError, load
from schemas.settings import InvalidSettings, get_settings
from workers.carriers.routing import Message, Router

TOML = """
[carriers.home]
driver = "smpp"
host = "smsc.example.net"
system_id = "acme"
password = "secret"

[carriers.backup]
driver = "smpp"
host = "smsc2.example.net"
system_id = "acme"

[carriers.gateway]
driver = "http"
url = "https://gateway.example.net"

[[routes]]
name = "mms"
kind = "mms"
carrier = "gateway"

[[routes]]
name = "vip"
account = ["AC00000000000000000000000000000001"]
carrier = "backup"

[[routes]]
name = "germany"
prefix = ["+49"]
weighted = { home = 70, backup = 30 }

[[routes]]
name = "uk"
country = "GB"
sender = ["MG00000000000000000000000000000001"]
carrier = "gateway"

[[routes]]
name = "rest"
failover = ["home", "backup"]
"""


def write(tmp_path: Path, text: str, name: str = "carriers.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def message(to: str = "+15005550006", mms: bool = False, account: str = "AC1",
            service: str | None = None) -> Message:  # fmt: skip
    return Message(to, "+15005550010", mms, account, service)


def test_routes_match_on_kind_account_prefix_country_and_sender(tmp_path: Path) -> None:
    plan = load(write(tmp_path, TOML))
    router = Router(plan.connections, plan.routes)

    def chosen(m: Message) -> tuple[str, str] | None:
        choice = router.choose(m)
        return (choice.route, choice.connection) if choice else None

    assert chosen(message(mms=True)) == ("mms", "gateway")
    assert chosen(message(account="AC00000000000000000000000000000001")) == ("vip", "backup")
    assert chosen(message("+447400123456", service="MG00000000000000000000000000000001")) == (
        "uk", "gateway"
    )  # fmt: skip
    assert chosen(message("+447400123456")) == ("rest", "home")  # no sender: not "uk"
    assert chosen(message("+15005550006")) == ("rest", "home")
    assert plan.connections["home"].carries == {"sms"}  # SMPP carries no MMS


def test_a_weighted_route_splits_2000_messages_as_its_weights_say(tmp_path: Path) -> None:
    plan = load(write(tmp_path, TOML))
    router = Router(plan.connections, plan.routes)
    split = Counter(router.choose(message("+4915112345678")).connection for _ in range(2000))  # type: ignore[union-attr]
    assert split == {"home": 1400, "backup": 600}  # smooth round robin: exact


def test_failover_skips_an_unhealthy_connection_and_returns_when_it_heals(
    tmp_path: Path,
) -> None:
    plan = load(write(tmp_path, TOML))
    down = {"home"}
    router = Router(plan.connections, plan.routes, healthy=lambda name: name not in down)
    assert router.choose(message()).connection == "backup"  # type: ignore[union-attr]
    # a weighted route leaves it out too
    assert {router.choose(message("+49151")).connection for _ in range(10)} == {"backup"}  # type: ignore[union-attr]
    down.clear()
    assert router.choose(message()).connection == "home"  # type: ignore[union-attr]
    # a hand-off that could not reach it routes around it for a while
    router.unreachable("home")
    assert router.choose(message()).connection == "backup"  # type: ignore[union-attr]


def test_no_route_that_can_carry_it_is_no_choice(tmp_path: Path) -> None:
    text = TOML.replace(
        'kind = "mms"\ncarrier = "gateway"', 'kind = "mms"\nprefix = "+44"\ncarrier = "gateway"'
    )
    plan = load(write(tmp_path, text))
    router = Router(plan.connections, plan.routes)
    assert router.choose(message("+15005550006", mms=True)) is None  # only SMPP is left
    # without routes: the first that can carry it, default first
    bare = load(write(tmp_path, TOML.split("[[routes]]")[0]))
    assert Router(bare.connections, ()).choose(message()).connection == "backup"  # type: ignore[union-attr]
    assert Router(bare.connections, ()).choose(message(mms=True)).connection == "gateway"  # type: ignore[union-attr]


def test_the_same_file_in_yaml(tmp_path: Path) -> None:
    text = """
carriers:
  home: {driver: smpp, host: smsc.example.net, system_id: acme}
  gateway: {driver: simulator, url: "http://127.0.0.1:8100"}
routes:
  - {kind: mms, carrier: gateway}
  - name: rest
    failover: [home]
"""
    plan = load(write(tmp_path, text, "carriers.yaml"))
    assert [route.name for route in plan.routes] == ["route 1", "rest"]


@pytest.mark.parametrize(
    ("change", "line", "says"),
    [
        (("port = 2775", 'port = "x"'), 2, "carriers.home.port must be int"),
        (('password = "secret"', 'password = "too-long-9"'), 2, "longer than 8 characters"),
        (('password = "secret"', 'colour = "red"'), 2, "no setting 'colour'"),
        (('carrier = "backup"', 'carrier = "nowhere"'), 23, "names no connection 'nowhere'"),
        (
            ('kind = "mms"\ncarrier = "gateway"', 'kind = "mms"\ncarrier = "home"'),
            18,
            "'home' cannot carry MMS",
        ),
        (
            ("weighted = { home = 70, backup = 30 }", "weighted = { home = 0 }"),
            28,
            "positive integer",
        ),
        (('country = "GB"', 'country = "gb"'), 33, "ISO 3166"),
    ],
)
def test_a_file_that_cannot_work_is_refused_with_its_line(
    tmp_path: Path, change: tuple[str, str], line: int, says: str
) -> None:
    text = TOML.replace('host = "smsc.example.net"', 'host = "smsc.example.net"\nport = 2775')
    text = text.replace(*change)
    with pytest.raises(CarriersFileError) as refused:
        load(write(tmp_path, text))
    assert f"carriers.toml, line {line}:" in str(refused.value)
    assert says in str(refused.value)


def test_a_process_stops_at_start_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "[carriers.x]\ndriver = 'pigeon'\n")
    monkeypatch.setenv("MYCPAAS_CARRIERS_FILE", str(path))
    get_settings.cache_clear()
    try:
        with pytest.raises(InvalidSettings) as stopped:
            get_settings()
        assert "MYCPAAS_CARRIERS_FILE:" in str(stopped.value)
        assert "line 1: carriers.x.driver must be one of smpp, http, simulator" in str(
            stopped.value
        )
        write(tmp_path, "not = [valid")
        get_settings.cache_clear()
        with pytest.raises(InvalidSettings) as broken:
            get_settings()
        assert "MYCPAAS_CARRIERS_FILE:" in str(broken.value)
        assert "not valid TOML" in str(broken.value)
    finally:
        get_settings.cache_clear()


def test_operators_see_the_connections_and_test_a_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database: str
) -> None:
    monkeypatch.setenv("MYCPAAS_CARRIERS_FILE", str(write(tmp_path, TOML)))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        listed = runner.invoke(main, ["carriers", "list"])
        assert listed.exit_code == 0, listed.output
        assert [line.split()[:3] for line in listed.output.splitlines()] == [
            ["home", "smpp", "sms"], ["backup", "smpp", "sms"], ["gateway", "http", "mms,sms"]
        ]  # fmt: skip
        tested = runner.invoke(main, ["routes", "test", "--to", "+4915112345678"])
        assert "route 'germany' → connection 'home'" in tested.output
        mms = runner.invoke(main, ["routes", "test", "--to", "+4915112345678", "--media"])
        assert "route 'mms' → connection 'gateway'" in mms.output
    finally:
        get_settings.cache_clear()


def test_the_documented_example_is_a_file_that_works(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "docs" / "carriers.md").read_text()
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    plan = load(write(tmp_path, example))
    router = Router(plan.connections, plan.routes)
    assert router.choose(message("+4915112345678")).connection == "direct-de"  # type: ignore[union-attr]
    assert router.choose(message(mms=True)).connection == "mms-gateway"  # type: ignore[union-attr]
