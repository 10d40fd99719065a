"""Which of a worker's carrier connections takes a segment: MMS may go another way than SMS.

SMPP cannot carry MMS, so a deployment whose SMS leave over SMPP sends its MMS through an HTTP
gateway: ``MYCPAAS_MMS_CARRIER`` (``simulator`` or ``http``, at ``MYCPAAS_CARRIER_URL``) names
it. Unset, every segment goes through ``MYCPAAS_CARRIER``.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from workers.carriers.base import CarrierDriver, Submission, sid_of


@dataclass
class Carriers:
    """The connections of one worker process; closed together at its shutdown."""

    default: CarrierDriver
    mms: CarrierDriver | None = None

    def for_reference(self, reference: str) -> CarrierDriver:
        """The connection a segment (``<sid>-<n>``) goes through: an ``MM`` sid is MMS."""
        if self.mms is not None and sid_of(reference).startswith("MM"):
            return self.mms
        return self.default

    def name_of(self, driver: CarrierDriver) -> str:
        """The connection's name in logs, /readyz and metrics: ``default`` or ``mms``."""
        return "mms" if driver is self.mms else "default"

    def split(
        self, submissions: Sequence[Submission]
    ) -> list[tuple[CarrierDriver, list[Submission]]]:
        """The submissions grouped by the connection each goes through, in their order."""
        groups: dict[int, tuple[CarrierDriver, list[Submission]]] = {}
        for submission in submissions:
            driver = self.for_reference(submission.reference)
            groups.setdefault(id(driver), (driver, []))[1].append(submission)
        return list(groups.values())

    def close(self) -> None:
        for driver in (self.default, self.mms):
            if driver is not None:
                driver.close()
