"""Recipients who texted STOP: a create to one of them from the scope they opted out of
(the number, or the Messaging Service it is in) is refused with Twilio's 21610."""

from sqlalchemy import or_, select
from sqlmodel import Session

from dispatcher.errors import InvalidParameter
from schemas.inbound import opt_outs_table
from schemas.models import service_numbers_table

UNSUBSCRIBED = 21610


def refuse_if_opted_out(session: Session, to: str, from_: str, service_sid: str | None) -> None:
    o, sn = opt_outs_table.c, service_numbers_table.c
    scopes = [from_, *([service_sid] if service_sid else [])]
    in_service = select(sn.service_sid).where(sn.phone_number == from_).scalar_subquery()
    opted = session.execute(
        select(o.scope)
        .where(o.phone_number == to, or_(o.scope.in_(scopes), o.scope == in_service))
        .limit(1)
    ).first()
    if opted is not None:
        raise InvalidParameter(
            f"Attempt to send to unsubscribed recipient: {to} opted out of messages from "
            f"{opted.scope}",
            code=UNSUBSCRIBED,
        )
