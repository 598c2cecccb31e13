"""Workflows that change recommendations data, one module per sub-domain:

- ``imports``: reading dataset files and writing datasets; import jobs.
- ``splits``: storing train/test splits.
- ``training``: fitting Surprise or implicit-feedback models, evaluating them, writing top-K
  recommendations.
- ``external``: importing top-K lists made elsewhere as a recommender run.
"""

from recommendations.services.imports import (
    ImportResult,
    dataset_import,
    dataset_import_files,
    import_job_run,
    import_job_start,
)

__all__ = [
    "ImportResult",
    "dataset_import",
    "dataset_import_files",
    "import_job_run",
    "import_job_start",
]
