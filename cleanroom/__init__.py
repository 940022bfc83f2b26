"""cleanroom: an on-premise, privacy-preserving data clean room.

The package is split along the trust boundary: ``cleanroom.party`` runs on a
party's own machine and never imports room-side code; the room side consumes
what the party side seals (see ``cleanroom.contract.bundle``).
"""

__version__ = "0.1.0"
