"""Queries: restricted SQL and templates, checked against the policy, bounded, released with DP."""
