"""Scheduled reports: definitions approved in the policy, run under the reporter role.

- :mod:`~cleanroom.room.policy.reports` — what a report is (in the policy);
- :mod:`.runs` — the record of every run (``report_runs``);
- :mod:`.runner` — one run: claim, check, charge once, run sections, publish;
- :mod:`.schedule` — the in-service scheduler (cron slots, UTC);
- :mod:`.render`, :mod:`.tables`, :mod:`.cells`, :mod:`.charts` — the outputs;
- :mod:`.access` — who may read them; :mod:`.published` — what a reader is given.
"""
