"""What the simulator's SMSC answers and receipts per destination, the same final status and
code as over HTTP:

| To             | submit_sm_resp                          | receipt                          |
|----------------|-----------------------------------------|----------------------------------|
| `+15005550001` | ROK                                     | UNDELIV err:027 (30003)          |
| `+15005550002` | ROK                                     | UNDELIV err:001 (30005)          |
| `+15005550003` | ROK                                     | UNDELIV err:011 (30006)          |
| `+15005550004` | ROK                                     | REJECTD (30007)                  |
| `+15005550005` | ROK                                     | UNDELIV err:000 (30008)          |
| `+15005550007` | ESME_RMSGQFUL twice per part, then ROK  | DELIVRD                          |
| `+15005550008` | ESME_RTHROTTLED once per part, then ROK | DELIVRD                          |
| `+15005550009` | ROK                                     | none, ever                       |
| `+15005550010` | ROK, after the receipt                  | DELIVRD, before the response     |
| `+15005550011` | ESME_RINVDSTADR (21211)                 | none                             |
| `+15005550012` | ESME_RSUBMITFAIL (30008)                | none                             |
| anything else  | ROK                                     | DELIVRD                          |
"""

from workers.carriers.smpp.pdu import Status

RECEIPTS: dict[str, tuple[str, int]] = {  # destination -> (stat, err) of its receipt
    "+15005550001": ("UNDELIV", 27),
    "+15005550002": ("UNDELIV", 1),
    "+15005550003": ("UNDELIV", 11),
    "+15005550004": ("REJECTD", 0),
    "+15005550005": ("UNDELIV", 0),
}
REFUSED: dict[str, Status] = {
    "+15005550011": Status.ESME_RINVDSTADR,
    "+15005550012": Status.ESME_RSUBMITFAIL,
}
QUEUE_FULL_NUMBER = "+15005550007"
QUEUE_FULL_TIMES = 2  # ESME_RMSGQFUL answers per part before it is accepted
THROTTLED_NUMBER = "+15005550008"
SILENT_NUMBER = "+15005550009"
RECEIPT_FIRST_NUMBER = "+15005550010"


def refusal(to: str, submits: int) -> Status | None:
    """The answer other than ROK for ``to`` at its part's ``submits``-th submit_sm, if any."""
    if to in REFUSED:
        return REFUSED[to]
    if to == QUEUE_FULL_NUMBER and submits <= QUEUE_FULL_TIMES:
        return Status.ESME_RMSGQFUL
    if to == THROTTLED_NUMBER and submits == 1:
        return Status.ESME_RTHROTTLED
    return None


def receipt(to: str) -> tuple[str | None, int]:
    """``(stat, err)`` of the receipt an accepted message to ``to`` gets; stat None: none."""
    stat, err = RECEIPTS.get(to, ("DELIVRD", 0))
    return (None if to == SILENT_NUMBER else stat), err
