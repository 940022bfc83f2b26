"""The room over HTTP: what the API (``room.api``) and the web UI (``room.web``) share.

The request's room, engine, report runner and user with its role checks
(:mod:`.deps`), the request bodies both check (:mod:`.bodies`), a run's files
as responses (:mod:`.downloads`), and the app that mounts both faces
(:mod:`.app`). The two faces import this, never each other; the room's domain
imports none of it.
"""
