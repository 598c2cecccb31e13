"""What every section of the study report shares: the resample count, run labels, decisiveness.

Every judge run and probe carries ``decisiveness``: how sure its answers were (the mean
probability of the chosen option and the mean entropy, for answers scored by likelihood), beside
the chance level (1 / number of options) and the share of its most common answer, so that a
judge or prober that says the same thing every time, or spreads its probability evenly, is not
read as a finding.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from explanations.models import GenerationRun

# Resamples behind every interval of the report (the statistics' own default is 2,000).
RESAMPLES = 1000


def run_label(run: GenerationRun) -> str:
    """How the report names a generation run everywhere: ``#<id> <generator name>``."""
    return f"#{run.pk} {run.generator.name}"


def decisiveness(distributions: list[list[float]], answers: list[str], n_options: int) -> dict[str, Any]:
    """Mean top probability and mean entropy (bits) of ``distributions`` (answers scored by
    likelihood; None when there are none), the chance level ``1 / n_options`` and the most
    common of ``answers`` (the parsed ones) with its share."""
    top = [max(d) for d in distributions if d]
    entropies = [-sum(p * math.log2(p) for p in d if p > 0) for d in distributions if d]
    common = Counter(answers).most_common(1)
    return {
        "n": len(answers),
        "scored": len(top),
        "options": n_options,
        "chance": 1 / n_options if n_options else None,
        "mean_top_probability": sum(top) / len(top) if top else None,
        "mean_entropy_bits": sum(entropies) / len(entropies) if entropies else None,
        "max_entropy_bits": math.log2(n_options) if n_options else None,
        "majority_answer": common[0][0] if common else None,
        "majority_share": common[0][1] / len(answers) if common else None,
    }
