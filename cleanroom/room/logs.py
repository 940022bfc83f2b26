"""Structured service logs (JSON lines) that never carry a token, identifier or secret.

Callers log ids, counts and outcomes only; as a second line of defence the
formatter masks anything shaped like a bearer token, a phone number or an
e-mail address before a line is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from cleanroom.room.files import make_private

_MASKS = [
    (re.compile(r"cr_[A-Za-z0-9_\-]{20,}"), "cr_***"),
    (re.compile(r"(?i)bearer\s+\S+"), "Bearer ***"),
    (re.compile(r"[\w.+\-]+@[\w\-]+\.[\w.\-]+"), "***@***"),
    (re.compile(r"(?:\+98|0098|\b98|\b0)?[\s\-]?9\d{2}[\s\-]?\d{3}[\s\-]?\d{4}\b"), "***phone***"),
    (re.compile(r"\b\d{10,}\b"), "***digits***"),
    (re.compile(r"[0-9a-fA-F]{64}"), "***hex***"),
]
_STANDARD = set(vars(logging.makeLogRecord({})))
LOGGERS = ("cleanroom", "uvicorn", "uvicorn.error", "uvicorn.access")


def scrub(text: str) -> str:
    """Mask anything that looks like a secret or a raw identifier."""
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line, extra fields included, everything scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        # Scrub the serialized message and fields (masks keep the JSON valid), not ts.
        payload = json.loads(scrub(json.dumps({"msg": record.getMessage(), **fields}, default=str)))
        doc = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            **payload,
        }
        if record.exc_info and record.exc_info[0] is not None:
            doc["exception"] = record.exc_info[0].__name__
        return json.dumps(doc, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable, scrubbed the same way."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def configure(log_file: Path | None, fmt: str = "json") -> None:
    """Route the service's and uvicorn's logs through the scrubbing formatter."""
    formatter: logging.Formatter = (
        JsonFormatter() if fmt == "json" else TextFormatter("%(asctime)s %(levelname)s %(message)s")
    )
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
        make_private(log_file.parent)  # the log names parties, users and queries
        make_private(log_file)
    for handler in handlers:
        handler.setFormatter(formatter)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in logger.handlers:
            old.close()
        logger.handlers = list(handlers)
        logger.propagate = False
        logger.setLevel(logging.INFO)


def reset() -> None:
    """Detach and close the handlers :func:`configure` installed (tests, embedded use)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            handler.close()
        logger.handlers = []
        logger.propagate = True
