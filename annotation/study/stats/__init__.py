"""The statistics behind the study report: estimates, their uncertainty, and agreement.

Pure functions of plain values (sequences, numpy arrays): no Django models, no database, no
annotation services; numpy, scipy and ``krippendorff`` only (and ``explanations.judging``'s
rule for combining a judge's two orders). Results are floats or small frozen dataclasses with
a ``to_dict()`` that report code can serialise. Import each from its topic module:

- ``bootstrap``: ``Interval``, ``Summary``, the percentile-bootstrap machinery (its module
  docstring states the conventions every module here follows), ``bootstrap_ci``,
  ``mean_median_summary``, ``discrete_summary``, ``accuracy_with_ci``, ``majority_baseline``.
- ``pairwise``: ``win_tie_loss``, ``bradley_terry`` and its Newton fitters, ``position_bias``.
- ``agreement``: ``cohen_kappa`` and Krippendorff's alpha (``alpha``, ``alpha_with_ci``,
  ``alpha_of_answers``, ``alphas_of_answers``).
- ``correlations``: ``kendall_tau``, ``spearman_rho``.
"""
