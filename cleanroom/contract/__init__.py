"""The contract between a party and the room: what both sides must agree on, byte for byte.

A party's toolkit writes what the room reads: the dataset spec (``spec``), the sealed,
signed bundle (``bundle``), the key files (``keys``), the keyed hash that turns an
identifier into a token (``keyed_hash``) and the canonical JSON and YAML reading both
sides use (``documents``). Nothing here imports the party's code or the room's: a party
engineer can read this package to know everything that leaves the building.
"""
