"""The API's paths as its OpenAPI document names them, and the media types it takes."""

V1 = "/v1/Accounts/{account_sid}/Messages"
V1_ONE = "/v1/Accounts/{account_sid}/Messages/{sid}"
V1_MEDIA_ONE = "/v1/Accounts/{account_sid}/Messages/{sid}/Media/{media_sid}"
TWILIO = "/2010-04-01/Accounts/{account_sid}/Messages.json"
SERVICES = "/v1/Services"
SERVICE = "/v1/Services/{sid}"
POOL = "/v1/Services/{service_sid}/PhoneNumbers"
POOL_ONE = "/v1/Services/{service_sid}/PhoneNumbers/{sid}"
NUMBERS = "/v1/Accounts/{account_sid}/IncomingPhoneNumbers"
CREATES = [V1, TWILIO]
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
