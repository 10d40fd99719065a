"""Responses checked against Twilio's own schemas (tests/data/twilio_schemas.json, from Twilio's
OpenAPI description): every documented property present, of the documented type and format."""

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

SCHEMAS: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "twilio_schemas.json").read_text()
)["schemas"]
MESSAGE = "api.v2010.account.message"
MEDIA = "api.v2010.account.message.media"
SERVICE = "messaging.v1.service"
SERVICE_NUMBER = "messaging.v1.service.phone_number"

TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _format_problem(value: str, fmt: str | None) -> str | None:
    try:
        if fmt == "date-time-rfc-2822":
            datetime.strptime(value, "%a, %d %b %Y %H:%M:%S %z")
        elif fmt == "date-time":
            if datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is None:
                return "a date-time without a zone"
        elif fmt == "uri" and not value.startswith(("http://", "https://")):
            return "not an absolute URI"
        elif fmt == "phone-number" and not re.fullmatch(r"\+[1-9]\d{1,14}", value):
            return "not an E.164 number"
    except ValueError as exc:
        return str(exc)
    return None


def _check(value: Any, schema: dict[str, Any], where: str) -> list[str]:
    if "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[1]]
    if value is None:
        return [] if schema.get("nullable") else [f"{where}: null, which is not allowed"]
    expected = TYPES[schema["type"]]
    if not isinstance(value, expected) or (bool not in expected and isinstance(value, bool)):
        return [f"{where}: {value!r} is not a {schema['type']}"]
    found = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            found.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
            found.append(f"{where}: {value!r} has the wrong length")
        problem = _format_problem(value, schema.get("format"))
        if problem:
            found.append(f"{where}: {value!r}: {problem}")
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value:
                found.append(f"{where}.{name}: missing")
            else:
                found += _check(value[name], sub, f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for n, item in enumerate(value):
            found += _check(item, schema["items"], f"{where}[{n}]")
    return found


def assert_matches(document: dict[str, Any], schema_name: str) -> None:
    """Fails naming every property that is missing or of the wrong type or format."""
    problems = _check(document, SCHEMAS[schema_name], schema_name)
    assert not problems, "\n".join(problems)
