"""Workflows that change annotation data, one module per sub-domain:

- ``campaigns``: creating and closing campaigns, reference items, participants and crowd entry.
- ``assignments``: handing items out under leases and storing answers exactly once.
- ``privacy``: the scan of what annotators would see, before a campaign opens.
- ``claims``: the claims of a claims campaign's items, and their re-split in review.
- ``teacher``: tuning a generator on a campaign's best-rated explanations.
- ``judge_tuning``: tuning a pairwise judge on a campaign's human preferences.
"""
