"""The driver never has more than a window of parts sent and not yet recorded: what a kill -9
can make unknown (the end-to-end proof, with the SMSC counting duplicates, is
``tests/e2e/test_smpp.py::test_a_kill_under_load_duplicates_at_most_a_window``)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.smpp_driver import Inbox, accepted_ids, destination, eventually, open_driver, submission
from tests.smsc import Smsc


class Record:
    """A store of carrier ids that, until released, holds every write (``hangs``) or refuses
    it as a database that is away does."""

    def __init__(self, hangs: bool) -> None:
        self.hangs = hangs
        self.release = threading.Event()
        self.recorded: list[tuple[str, str]] = []

    def __call__(self, pairs: list[tuple[str, str]]) -> None:
        if self.hangs:
            self.release.wait(10)
        elif not self.release.is_set():
            raise OSError("the database is away")
        self.recorded += pairs


@pytest.mark.parametrize("hangs", [True, False], ids=["store hangs", "store refuses"])
def test_parts_wait_for_earlier_answers_to_be_recorded(
    smsc: Smsc, inbox: Inbox, hangs: bool
) -> None:
    # given a window of 4 and a store of carrier ids that does not take them yet
    record = Record(hangs)
    driver = open_driver(smsc, inbox, window=4, on_accepted=record)
    try:
        to = destination()
        parts = [submission(to, f"p{n}", part=n, total=12, ref=5) for n in range(1, 13)]
        with ThreadPoolExecutor(1) as pool:
            handing = pool.submit(driver.submit, parts)
            # then: four parts go out and are answered, and no fifth until they are recorded
            eventually(lambda: len(smsc.counters(to)["accepted"]) == 4)
            threading.Event().wait(1.5)  # past a retry of the refused store
            assert len(smsc.counters(to)["accepted"]) == 4
            # when the store answers
            record.release.set()
            ids = accepted_ids(handing.result(30))
        # then: every part went once, and every carrier id was recorded by the driver
        assert sorted(smsc.counters(to)["accepted"].values()) == [1] * 12
        assert sorted(carrier_id for _, carrier_id in record.recorded) == sorted(ids)
    finally:
        record.release.set()
        driver.close()
