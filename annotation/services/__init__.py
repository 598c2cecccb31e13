"""Workflows that change annotation data, one module per sub-domain:

- ``campaigns``: creating and closing campaigns, reference items, participants and crowd entry.
- ``assignments``: handing items out under leases and storing answers exactly once.
- ``judge_tuning``: tuning a pairwise judge on a campaign's human preferences.
"""
