"""The demo harness: a whole clean room with its parties on one machine, for ``cleanroom demo``.

It plays every role at once (three parties preparing synthetic data, the room
ingesting, matching and serving), so it imports both sides; neither the party
toolkit nor the room imports it.
"""
