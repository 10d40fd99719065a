"""Two-way messaging beside the inbound stage: who opted out, and the replies sent for an
inbound message (its webhook's TwiML, the automatic answer to a keyword)."""
