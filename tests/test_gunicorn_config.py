"""The gunicorn hooks every launch uses (xrec_site.gunicorn_config)."""

import gc

from xrec_site import gunicorn_config


def test_a_worker_freezes_what_it_loaded_so_full_collections_skip_it() -> None:
    try:
        gunicorn_config.post_worker_init(worker=None)
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # Django and the apps, already imported in this test process
        gunicorn_config.when_ready(server=None)
        assert gc.get_freeze_count() >= frozen
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
