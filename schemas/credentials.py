"""Account credentials derived from the server's secret key, so the database holds no token.

The auth token is ``HMAC(secret_key, sid:salt)``: the API checks requests against its SHA-256
(stored), and the callback worker re-derives the token to sign callbacks the way Twilio does.
A leaked database reveals no token; rotating an account's salt rotates its token. Changing
``MYCPAAS_SECRET_KEY`` changes every account's token.
"""

import base64
import hashlib
import hmac

from schemas.settings import get_settings


def _mac(purpose: str, account_sid: str, salt: str) -> bytes:
    key = get_settings().secret_key.encode()
    return hmac.new(key, f"{purpose}:{account_sid}:{salt}".encode(), hashlib.sha256).digest()


def auth_token(account_sid: str, salt: str) -> str:
    """The account's auth token (32 hex digits, like Twilio's)."""
    return _mac("auth-token", account_sid, salt).hex()[:32]


def webhook_secret(account_sid: str, salt: str) -> str:
    """The account's Standard Webhooks signing secret (``whsec_`` + base64 of 32 bytes)."""
    return "whsec_" + base64.b64encode(_mac("webhook", account_sid, salt)).decode()


def token_hash(token: str) -> str:
    # Tokens are 128 random-looking bits, so a fast hash is safe; a slow KDF would cap intake.
    return hashlib.sha256(token.encode()).hexdigest()
