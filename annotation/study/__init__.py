"""The study report: every perspective on a set of generation runs, with its statistics.

- ``stats/``: the statistics, pure functions of plain values (see its package docstring).
- ``report``: ``study_report`` and its cached form, which gather the sections below.
- ``judges``, ``human``, ``attributes``, ``meta``: one module per report section.
- ``sections``: what the section builders share (resample count, run labels, decisiveness).
- ``text``: the text metrics a report shows and how one is read from a metrics dict.
- ``tables``, ``charts``: the report as paper tables (CSV, Markdown, LaTeX) and as SVG geometry.
- ``forms``, ``views``, ``apis``, ``urls``: the study page, its exports and its JSON endpoint.
"""
