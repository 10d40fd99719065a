"""Message status and the one table of legal transitions."""

from enum import StrEnum


class MessageStatus(StrEnum):
    SCHEDULED = "scheduled"  # waits for its SendAt; the sweeper releases it to 'queued' then
    QUEUED = "queued"  # accepted and stored; waiting for segmentation, media, throttle or carrier
    SENDING = "sending"  # handed to the carrier driver; its answer is not committed yet
    SENT = "sent"  # the carrier took every segment and gave it an id
    DELIVERED = "delivered"  # the carrier's receipts say every segment reached the handset
    FAILED = "failed"  # final failure; error_code and error_message say why
    CANCELED = "canceled"  # a scheduled message canceled before its time; never sent
    RECEIVING = "receiving"  # an inbound MMS whose media are being fetched
    RECEIVED = "received"  # an inbound message: a handset sent it to one of our numbers


TERMINAL = frozenset(
    {MessageStatus.DELIVERED, MessageStatus.FAILED, MessageStatus.CANCELED, MessageStatus.RECEIVED}
)
# The pipeline is done with the message's text and rows: it may be redacted or deleted. A 'sent'
# message only waits for receipts, which change its status and nothing else.
SETTLED = TERMINAL | {MessageStatus.SENT}

# Statuses only move forward. A receipt may skip 'sent' when it lands before the hand-off result.
TRANSITIONS: dict[MessageStatus, frozenset[MessageStatus]] = {
    # failed: its recipient opted out before its time (21610)
    MessageStatus.SCHEDULED: frozenset(
        {MessageStatus.QUEUED, MessageStatus.CANCELED, MessageStatus.FAILED}
    ),
    MessageStatus.QUEUED: frozenset(
        {MessageStatus.SENDING, MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.FAILED}
    ),
    MessageStatus.SENDING: frozenset(
        {MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.FAILED}
    ),
    MessageStatus.SENT: frozenset({MessageStatus.DELIVERED, MessageStatus.FAILED}),
    MessageStatus.DELIVERED: frozenset(),
    MessageStatus.FAILED: frozenset(),
    MessageStatus.CANCELED: frozenset(),
    MessageStatus.RECEIVING: frozenset({MessageStatus.RECEIVED}),
    MessageStatus.RECEIVED: frozenset(),
}


def can_move(current: MessageStatus, new: MessageStatus) -> bool:
    return new in TRANSITIONS[current]
