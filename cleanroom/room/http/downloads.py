"""A report run's files over HTTP, with the same headers from the API and the web UI."""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import FileResponse, Response

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
}
# The page is our own, autoescaped HTML; still, it is served from the API's origin,
# so it may load nothing and run nothing: inline style, embedded images and the
# embedded Persian font only.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src data: 'self'; font-src data:; "
    "style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
}


def file_response(path: Path) -> FileResponse:
    """A run's file: a page that may load and run nothing, anything else never sniffed."""
    headers = PAGE_HEADERS if path.suffix == ".html" else {"X-Content-Type-Options": "nosniff"}
    return FileResponse(
        path,
        media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
        headers=headers,
    )


def zip_response(filename: str, data: bytes) -> Response:
    """A run's files in one zip, downloaded as ``filename``."""
    return Response(
        data,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-Type-Options": "nosniff",
        },
    )
