"""Signatures on status callbacks: Twilio's ``X-Twilio-Signature`` and Standard Webhooks."""

import base64
import hashlib
import hmac
import time
from urllib.parse import urlsplit, urlunsplit

USER_AGENT = "mycpaas-dispatch/0.1 (status callback)"


def strip_fragment(url: str) -> str:
    """The URL as requested and signed: Twilio keeps connection overrides in the fragment."""
    return urlunsplit(urlsplit(url)._replace(fragment=""))


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """base64(HMAC-SHA1(token, url + every name+value, names sorted)), as Twilio computes it."""
    payload = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def standard_webhook_signature(secret: str, webhook_id: str, timestamp: int, body: str) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``id.timestamp.body`` with the ``whsec_`` secret."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{webhook_id}.{timestamp}.{body}".encode()
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(
    token: str, secret: str, url: str, params: dict[str, str], webhook_id: str, body: str
) -> dict[str, str]:
    """A callback POST's headers: both signatures, the idempotency token and webhook id."""
    stamp = int(time.time())
    return {
        "content-type": "application/x-www-form-urlencoded",
        "user-agent": USER_AGENT,
        "x-twilio-signature": twilio_signature(token, url, params),
        "i-twilio-idempotency-token": webhook_id,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": standard_webhook_signature(secret, webhook_id, stamp, body),
    }
