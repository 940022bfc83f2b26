"""One exception tree for the whole product.

Every error has a stable ``code`` (for scripts and the API) and an HTTP
``status``. ``UserError`` means "your input is wrong and here is how"; its
message names the file, row and field but never a raw value (a phone number in
an error message would be a leak). ``InternalError`` means "our bug".

A message is written as a :class:`Text` (``T_("... %(name)s ...", name=...)``):
an English msgid of the message catalogs with its values kept apart, so the
same error reads in the requester's language (``cleanroom.i18n.localize``)
while ``str(err)``, ``code`` and ``details`` stay English and stable for
scripts, logs and the audit trail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Text:
    """A message to show in the reader's language: a catalog msgid and its values.

    The msgid is English with ``%(name)s`` placeholders (a literal percent
    sign is ``%%``); values are shown as given, or are Texts themselves
    (rendered in the same language).
    """

    msgid: str
    values: Mapping[str, object] = field(default_factory=dict)

    def render(
        self,
        gettext: Callable[[str], str] | None = None,
        show: Callable[[object], str] = str,
    ) -> str:
        """The message through ``gettext`` (English if None), each value through ``show``."""
        template = gettext(self.msgid) if gettext is not None else self.msgid
        values = {
            name: value.render(gettext, show) if isinstance(value, Text) else show(value)
            for name, value in self.values.items()
        }
        return template % values

    def __str__(self) -> str:
        return self.render()


def T_(msgid: str, /, **values: object) -> Text:
    """A translatable message (``pybabel extract -k T_`` collects the msgid)."""
    return Text(msgid, values)


class CleanroomError(Exception):
    """Root of every error cleanroom raises on purpose."""

    code = "error"
    status = 500
    text: Text | None = None  # the message for translation (None: English only)

    def __init__(self, *args: object) -> None:
        if args and isinstance(args[0], Text):
            self.text = args[0]
            args = (args[0].render(), *args[1:])
        super().__init__(*args)

    @property
    def details(self) -> dict[str, object]:
        """Structured facts about the error for scripts (rendered beside the message)."""
        return {}


class UserError(CleanroomError):
    """The caller's input is wrong; the message says what to change."""

    code = "bad_input"
    status = 400


class InputError(UserError):
    """A data file is unusable: names the file, and the row and field when known."""

    code = "bad_input_file"

    def __init__(
        self,
        path: str | Path,
        reason: str | Text,
        *,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path)
        self.row = row
        self.field = field
        self.reason = str(reason)
        values = {"file": self.path, "row": row, "field": field, "reason": reason}
        if row is not None and field is not None:
            text = T_("%(file)s: row %(row)s: column '%(field)s': %(reason)s", **values)
        elif row is not None:
            text = T_("%(file)s: row %(row)s: %(reason)s", **values)
        elif field is not None:
            text = T_("%(file)s: column '%(field)s': %(reason)s", **values)
        else:
            text = T_("%(file)s: %(reason)s", **values)
        super().__init__(text)

    @property
    def details(self) -> dict[str, object]:
        """The file, row and column at fault."""
        return {"file": self.path, "row": self.row, "field": self.field}


class SpecError(UserError):
    """A dataset spec or policy file does not validate."""

    code = "bad_spec"


class KeyFileError(UserError):
    """A key file is missing, malformed, truncated, of the wrong kind, or locked."""

    code = "bad_key"


class BundleError(UserError):
    """A bundle cannot be opened: malformed, truncated, tampered, or not for us."""

    code = "bad_bundle"


class SignatureError(BundleError):
    """A bundle's signature does not verify (tampered, or signed by someone else)."""

    code = "bad_signature"


class AuthError(UserError):
    """No valid credentials: missing, unknown or revoked token."""

    code = "unauthorized"
    status = 401


class ForbiddenError(UserError):
    """Valid credentials, but this role or party may not do this."""

    code = "forbidden"
    status = 403


class NotFoundError(UserError):
    """The thing asked for does not exist (or is not visible to the caller)."""

    code = "not_found"
    status = 404


class ConflictError(UserError):
    """The request clashes with the current state: a replayed bundle, a busy dataset."""

    code = "conflict"
    status = 409


class MixedMatchKeysError(ConflictError):
    """A match would join tokens made under two match keys (a rotation half done)."""

    code = "mixed_match_keys"

    def __init__(self, message: str | Text, *, key_id: str, parties: list[str]) -> None:
        super().__init__(message)
        self.key_id, self.parties = key_id, parties

    @property
    def details(self) -> dict[str, object]:
        """The key the match moves to and the parties whose live data is not under it."""
        return {"match_key_id": self.key_id, "parties": self.parties}


class TooLargeError(UserError):
    """An upload or request over the configured size limit."""

    code = "too_large"
    status = 413


class InternalError(CleanroomError):
    """Something that should not happen did: a bug, not the caller's fault."""

    code = "internal"


class UnavailableError(CleanroomError):
    """The room cannot do this right now, and changed nothing: retry later.

    Neither the caller's mistake nor our bug: the environment refused (another
    process holds the metadata store's lock, the disk is full). The message is
    safe to show and says what to do; ``retry_after`` is a hint in seconds.
    """

    code = "unavailable"
    status = 503
    retry_after = 5


class StoreBusyError(UnavailableError):
    """The metadata store stayed locked by another process past the busy timeout."""

    code = "store_busy"


class AuditChainBroken(UnavailableError):
    """The audit chain does not verify, so nothing that must be recorded can be done.

    Appending after a break would re-seal a cut-off or edited trail and erase
    the evidence, so every recorded action is refused (503) until an operator
    investigates and re-anchors the chain (``cleanroom audit reanchor``). Reads
    that need no record go on. ``entry`` is the first entry the verification
    names; ``reason`` is its sentence (entry numbers only, never data).
    """

    code = "audit_chain_broken"
    retry_after = 3600  # an operator has to act; retrying soon changes nothing

    def __init__(self, entry: int, reason: str | Text) -> None:
        self.entry = entry
        self.reason = str(reason)
        super().__init__(
            T_(
                "audit chain broken at entry %(entry)s: nothing more is recorded until an "
                "operator investigates (%(reason)s)",
                entry=entry,
                reason=reason,
            )
        )

    @property
    def details(self) -> dict[str, object]:
        """The entry where the chain breaks and why."""
        return {"entry": self.entry, "reason": self.reason}


class DiskFullError(UnavailableError):
    """A write failed for lack of space (or over the process's file-size limit)."""

    code = "disk_full"
    status = 507
    retry_after = 60


class DataExpired(UserError):
    """The data a request needs was deleted under the policy's retention (410 Gone).

    Not the caller's typo and not retryable: the match generation (or a dataset
    version it was built from) outlived its retention and was deleted, or is due
    to be. The message says since when and what brings data back (a new upload
    and a match). ``details`` names the generation and the instant, never data.
    """

    code = "data_expired"
    status = 410

    def __init__(self, generation: int, expired_at: str, reason: str | Text) -> None:
        self.generation = generation
        self.expired_at = expired_at
        self.reason = str(reason)
        super().__init__(
            T_(
                "match generation %(generation)s expired at %(expired_at)s (%(reason)s); its "
                "data is deleted: the parties upload current data and a room admin runs a match",
                generation=generation,
                expired_at=expired_at,
                reason=reason,
            )
        )

    @property
    def details(self) -> dict[str, object]:
        """The expired generation, when, and the retention rule that expired it."""
        return {"generation": self.generation, "expired_at": self.expired_at, "why": self.reason}
