"""Recipients who texted STOP: a create to one of them from the scope they opted out of
(the number, or the Messaging Service it is in) is refused with Twilio's 21610.

Checked where messages are stored, for a whole batch in one query (the committer's batch of
single creates, a bulk request): a create pays no round trip of its own for it."""

from sqlmodel import Session

from dispatcher.errors import InvalidParameter
from schemas.models import Message
from workers.twoway.optouts import UNSUBSCRIBED
from workers.twoway.optouts import opted_out as opted_out_of


def opted_out(session: Session, messages: list[Message]) -> dict[str, str]:
    """sid → the scope each refused message's recipient opted out of; the rest may be sent."""
    return opted_out_of(session, [(m.sid, m.to, m.from_, m.messaging_service_sid)
                                  for m in messages])  # fmt: skip


def refusal(to: str, scope: str) -> InvalidParameter:
    return InvalidParameter(
        f"Attempt to send to unsubscribed recipient: {to} opted out of messages from {scope}",
        code=UNSUBSCRIBED,
    )
