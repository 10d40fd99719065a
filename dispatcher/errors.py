"""API errors, rendered by one handler as Twilio's envelope ``{code, message, more_info, status}``.

ApiError                      any refusal the client can act on
├── AuthenticationError       20003, 401
├── NotFound                  20404, 404 (also another account's resource)
├── InvalidParameter          400 with the parameter's Twilio code
├── IdempotencyConflict       20409, 422: a key reused with other parameters
├── TooManyRequests           20429, 429
└── BadRequest                malformed body, wrong content type, too large (4xx)
"""

MORE_INFO_BASE = "https://www.twilio.com/docs/errors/"


class ApiError(Exception):
    code = 20001
    http_status = 400

    def __init__(self, message: str, *, code: int | None = None, http_status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status

    def envelope(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"{MORE_INFO_BASE}{self.code}",
            "status": self.http_status,
        }


class AuthenticationError(ApiError):
    code = 20003
    http_status = 401


class NotFound(ApiError):
    code = 20404
    http_status = 404


class InvalidParameter(ApiError):
    http_status = 400


class IdempotencyConflict(ApiError):
    code = 20409
    http_status = 422


class TooManyRequests(ApiError):
    code = 20429
    http_status = 429


class BadRequest(ApiError):
    code = 20001
    http_status = 400
