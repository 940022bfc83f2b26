"""Reading an HTML form post: URL-encoded only, size-capped, fields by name.

The browser posts our forms as ``application/x-www-form-urlencoded`` (none
uploads a file), which the standard library parses; this keeps the
multipart parser, and a dependency, out of the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from fastapi import Request

from cleanroom.errors import T_, TooLargeError, UserError

# The largest form is a proposed policy: up to 2M characters, up to ~6 bytes each once
# URL-encoded (two-byte UTF-8 characters, each byte as %XX).
MAX_FORM_BYTES = 16 * 1024 * 1024
MAX_FIELDS = 200


@dataclass(frozen=True)
class Form:
    """A parsed form: every value of every field, in order."""

    fields: dict[str, list[str]]

    def get(self, name: str, default: str = "") -> str:
        """The first value of a field (the default when absent)."""
        values = self.fields.get(name)
        return values[0] if values else default

    def all(self, name: str) -> list[str]:
        """Every value of a field (checkboxes sharing a name)."""
        return list(self.fields.get(name, []))

    def prefixed(self, prefix: str) -> dict[str, list[str]]:
        """Fields whose names start with ``prefix``, the prefix removed."""
        return {k[len(prefix) :]: v for k, v in self.fields.items() if k.startswith(prefix)}


async def read_form(request: Request) -> Form:
    """The posted form, or a clear error when it is not one of ours."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise UserError(T_("send the form as application/x-www-form-urlencoded"))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise TooLargeError(
                T_(
                    "the form is over %(max_form_bytes)s bytes",
                    max_form_bytes=format(MAX_FORM_BYTES, ","),
                )
            )
    try:
        text = body.decode("ascii")
        fields = parse_qs(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise UserError(T_("the form is not valid URL-encoded UTF-8")) from None
    return Form(fields)
