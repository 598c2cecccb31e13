"""Workflows of the explanations app, one module per sub-domain:

- ``generators``: generators, the bundled model, prompt templates and previews.
- ``generation``: generation runs and their chunked, idempotent tasks.
- ``adapters``: LoRA adapter training on a teacher's explanations.
"""
