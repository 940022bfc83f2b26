"""cleanroom: an on-premise, privacy-preserving data clean room.

The package is split along the trust boundary: ``cleanroom.party`` runs on a
party's own machine and never imports room-side code; ``cleanroom.room`` consumes
what the party side seals; ``cleanroom.contract`` is what both agree on (spec,
bundle, keys, keyed hash) and imports neither. The import contracts in
``pyproject.toml`` (``make lint``) hold the split.
"""

__version__ = "0.1.0"
