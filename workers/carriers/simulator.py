"""The driver for the carrier simulator (``workers.simulator.server``): a batch per request.

``POST {base}/submit`` with ``{"submissions": [<submission>, ...]}`` (each as in
:mod:`workers.carriers.http`: reference, to, from, text, part, total, udh_ref, media) answers
``200 {"results": [...]}``, one result per submission in the same order::

    {"reference": …, "status": "accepted", "carrier_id": "SIM…"}
    {"reference": …, "status": "rejected", "error_code": 30006, "message": "…"}
    {"reference": …, "status": "deferred", "retry_after_s": 0.2, "message": "…"}

``429``/``5xx``/connect error/timeout fail the whole request: TransientCarrierError with the
``Retry-After`` header's seconds. Any other non-2xx: PermanentCarrierError. A 2xx whose body is
not that shape (not JSON, a result missing, out of order, an unknown status): MalformedAnswer.
``lookup`` is ``GET {base}/submissions/{reference}`` as in the generic driver.
"""

from collections.abc import Sequence

from workers.carriers.base import (
    Accepted,
    Deferred,
    MalformedAnswer,
    Rejected,
    Result,
    Submission,
)
from workers.carriers.http import (
    ClientDriver,
    check_status,
    json_object,
    send,
    wire_submission,
)


class SimulatorCarrierDriver(ClientDriver):
    """Batches of segments in one ``POST /submit`` each, on one keep-alive client."""

    def submit(self, submissions: Sequence[Submission]) -> list[Result]:
        if not submissions:
            return []
        body = {"submissions": [wire_submission(submission) for submission in submissions]}
        response = send(self._client, "POST", "/submit", body)
        check_status(response)
        results = json_object(response).get("results")
        if not isinstance(results, list) or len(results) != len(submissions):
            raise MalformedAnswer(
                f"carrier answered {len(results) if isinstance(results, list) else 'no'} "
                f"results for {len(submissions)} submissions",
                status_code=response.status_code,
            )
        return [
            _result(item, submission.reference)
            for item, submission in zip(results, submissions, strict=True)
        ]


def _result(item: object, reference: str) -> Result:
    """One result of the batch answer, checked against the submission it must answer."""
    if not isinstance(item, dict) or item.get("reference") != reference:
        raise MalformedAnswer(f"result for {reference} missing or out of order: {item!r}")
    status = item.get("status")
    if status == "accepted":
        carrier_id = item.get("carrier_id")
        if isinstance(carrier_id, str) and carrier_id:
            return Accepted(reference, carrier_id)
    elif status == "rejected":
        error_code = item.get("error_code")
        message = item.get("message")
        if isinstance(error_code, int) and not isinstance(error_code, bool):
            return Rejected(reference, error_code, message if isinstance(message, str) else "")
    elif status == "deferred":
        retry_after_s = item.get("retry_after_s")
        message = item.get("message")
        if isinstance(retry_after_s, int | float) and not isinstance(retry_after_s, bool):
            return Deferred(
                reference,
                max(0.0, float(retry_after_s)),
                message if isinstance(message, str) else "",
            )
    raise MalformedAnswer(f"result for {reference} not understood: {item!r}")
