"""Room side: the clean-room service.

It ingests sealed bundles, matches identities and answers only policy-approved
aggregate queries. Nothing here is ever run by a party.
"""
