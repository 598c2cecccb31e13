"""The text metrics a study report shows and correlates with humans, and how each is read."""

from __future__ import annotations

from typing import Any

# The text metrics a report shows and correlates with humans: (name, path in the metrics dict).
TEXT_METRICS = (
    ("mean words", ("length", "mean")),
    ("over limit", ("length", "over_limit")),
    ("refusals", ("refusal_rate",)),
    ("USR", ("usr",)),
    ("distinct-2", ("distinct_2",)),
    ("FMR", ("features", "fmr")),
    ("FCR", ("features", "fcr")),
    ("DIV", ("features", "div")),
    ("hallucination", ("grounding", "hallucination_rate")),
    ("grounded", ("grounding", "grounded_share")),
    ("echoes", ("echo_rate",)),
    ("personalisation", ("personalisation", "mean_similarity")),
)


def dig(metrics: dict[str, Any], path: tuple[str, ...]) -> Any:
    """``metrics[path[0]][path[1]]…``, or None where the path does not exist."""
    node: Any = metrics
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node
