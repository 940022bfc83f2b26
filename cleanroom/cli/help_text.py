"""Every help text of the command line, listed for the message catalogs.

Click reads help from docstrings and ``help=`` arguments, which the catalogs'
extractor does not see; this list puts each one in the catalogs (``make
messages``), and a test fails when a command or option has help not listed
here (or not translated). :func:`cleanroom.cli.lang.translate_help` shows them.
"""

# ruff: noqa: E501 - one help text per line, as the commands write them

from __future__ import annotations

from cleanroom.i18n import N_

HELP = (
    N_(
        "'suppression': the input lists customers who opted out (identifiers only); the room leaves them out at every brand from the next match, replacing this party's previous list (an empty list withdraws every objection)."
    ),
    N_("A new directory for the restored room."),
    N_("A new group match key (32 random bytes), shared by the parties, never the room."),
    N_("A new room: its key pair and secret, its stores, the collaboration from POLICY."),
    N_("A party's Ed25519 signing key pair (PARTY.key, PARTY.pub)."),
    N_("A room directory that is not being served (instead of --url)."),
    N_("A second room admin or reviewer (required when the policy asks for two approvals)."),
    N_("A template approved in the policy (e.g. overlap)."),
    N_("Add a user and print its bearer token (shown this once only)."),
    N_(
        "Also write the result to FILE (.csv, .parquet, .json, .xlsx): one line per number with its bounds and flags."
    ),
    N_("Approve VERSION; the approval that reaches the required count activates it."),
    N_("Archive file."),
    N_("Ask for a passphrase and encrypt the private key(s) with it."),
    N_("Bearer token (or CLEANROOM_TOKEN)."),
    N_("Bearer token."),
    N_("Bundle to write."),
    N_("CSV or Parquet export."),
    N_("Create and inspect a clean room."),
    N_("Dataset name; must match the spec (not for a suppression list)."),
    N_("Dataset spec (YAML)."),
    N_("Delete every dataset version and match generation past the policy's retention now."),
    N_("Directory."),
    N_("Download the run's files (page, charts, CSV, JSON) into this directory."),
    N_("Every user: role, party, created, revoked."),
    N_("Every version: status, author, base, approvals."),
    N_("Generate five parties, seal their data, run a room, and publish its journeys report."),
    N_("Generate room, party and group match keys."),
    N_("Generate the group's five parties with messy identifiers, plus a ground truth."),
    N_("Group match key file."),
    N_(
        "Keep the room serving on 127.0.0.1 afterwards (web UI and API) until Ctrl-C; a token per role goes to OUT/tokens.txt (readable by you only)."
    ),
    N_("Key file."),
    N_(
        "Language of help, messages and printed results (default: CLEANROOM_LANG, else en); --json output is the same in every language."
    ),
    N_("Listen address (default from settings)."),
    N_("Manage the room's users and their bearer tokens."),
    N_("Normalize identifiers, tokenize them with the match key, and seal a bundle."),
    N_("One version's status, decisions and YAML."),
    N_("Only these parties (repeatable)."),
    N_("Optional note kept with the approval."),
    N_("Output directory."),
    N_("Overwrite existing key files."),
    N_("Port (default from settings)."),
    N_("Price the query; spend nothing, read nothing."),
    N_("Print as JSON."),
    N_("Print the raw answer as JSON."),
    N_("Print the raw changes as JSON."),
    N_("Print the raw result as JSON."),
    N_("Print the summary as JSON."),
    N_("Privacy budget to spend."),
    N_("Privacy-preserving data clean room: party toolkit and room service."),
    N_("Propose FILE (a whole policy) as a new version; prints its changes from the active one."),
    N_("Propose an earlier VERSION's text again (it needs approvals like any proposal)."),
    N_("Propose, review and compare collaboration policy versions (reviewers)."),
    N_("Re-open a past result of your party (nothing is spent)."),
    N_("Read and verify the audit trail."),
    N_("Rebuild a room from ARCHIVE; refuse unless its audit chain and budget ledger verify."),
    N_("Recompute the hash chain; exit 1 naming every edited, deleted or reordered entry."),
    N_("Record an investigated break and resume recording; the break stays in `audit verify`."),
    N_("Reject VERSION with a comment; the proposal is closed."),
    N_("Replace an existing bundle at --out."),
    N_("Require the signature of this party key (.pub)."),
    N_("Resolve persons across all live datasets (room admins), or show the live match."),
    N_("Restricted SQL (aggregates only)."),
    N_("Revoke a user's token at once."),
    N_("Room URL (or CLEANROOM_URL)."),
    N_("Room admin or reviewer who investigated."),
    N_("Room admin token."),
    N_("Room directory (or CLEANROOM_ROOM)."),
    N_("Room key pair (HPKE X25519) and the room's re-keying secret."),
    N_("Run a query and print the result table with error bounds (or: history, show)."),
    N_("Run report NAME now (reporters and room admins); exits 1 if refused or failed."),
    N_("Run the service: HTTP API (OpenAPI at /docs) for one room."),
    N_("Scheduled overlap and journey reports: list them, run one now, fetch a run."),
    N_("Send a sealed bundle to the room; prints the dataset version once it is live."),
    N_("Serving room's URL."),
    N_("Show a bundle's header and check its signature, without decrypting it."),
    N_("Show a run of NAME (default: the latest published one); --out downloads its files."),
    N_("Show the version and exit."),
    N_("Template parameter k=v (repeatable)."),
    N_("The backup private key (backup.key)."),
    N_("The changes from version OLD to version NEW, loosening ones highlighted."),
    N_("The latest entries."),
    N_("The operator's backup key pair: backup.pub for the room, backup.key kept off it."),
    N_("The party this user acts for."),
    N_("The reports you may read, with their schedule, cost and latest run."),
    N_("The room's key files (room.key, room.pub, room.secret), kept apart."),
    N_(
        "The room's language (setting `language`): the report and the web UI in Persian (fa: right-to-left, Solar Hijri dates, Persian digits) or English."
    ),
    N_("The room's public key (room.pub)."),
    N_("This party's id, as in the collaboration policy."),
    N_("This party's private key."),
    N_("What the investigation found (recorded)."),
    N_("Why (required)."),
    N_("Why this version is proposed."),
    N_("Why."),
    N_("With --serve."),
    N_("Write a consistent archive of the room, sealed to its backup key, while it serves."),
    N_("Your party's queries, newest first."),
    N_(
        "show the live match instead of running one (any user): its inputs and the links the identity limits withheld (in full for reviewers, your party's own count otherwise)"
    ),
)

# Click's own words on help pages and usage errors (click asks the standard
# ``gettext``; :func:`cleanroom.cli.lang.translate_help` answers it from the catalogs).
CLICK = (
    N_("Usage:"),
    N_("Options"),
    N_("Commands"),
    N_("Show this message and exit."),
    N_("Show the version and exit."),
    N_("Error: {message}"),
    N_("Try '{command} {option}' for help."),
    N_("Missing option"),
    N_("Missing argument"),
    N_("No such command {name!r}."),
    N_("No such option {name!r}."),
    N_("Invalid value for {param_hint}: {message}"),
    N_("Aborted!"),
)
