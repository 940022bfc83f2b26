"""The web UI: server-rendered pages for analysts, reviewers, reporters and operators.

Served by the same FastAPI app as the API, under ``/ui`` (``/`` redirects
there), and kept out of the OpenAPI document: the API is the contract for
programs, the pages are for people. No front-end build step: Jinja2 pages
(autoescaped), one stylesheet, a few lines of plain JavaScript, and charts
drawn as SVG on the server.

- :mod:`.session` — sign-in sessions and CSRF tokens;
- :mod:`.access` — which page and button each role sees (the API's own rules);
- :mod:`.deps`, :mod:`.forms`, :mod:`.errors`, :mod:`.render`, :mod:`.charts` — plumbing;
- :mod:`.pages` — one module per page;
- :mod:`.routes` — the router the app includes.
"""
