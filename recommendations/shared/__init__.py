"""What every app uses, at the bottom of the layering (annotation → explanations →
recommendations → shared): nothing here imports an app's models, services or views.

- ``jobs``: the ``Job`` base model of every worker-run row (status, progress, claim).
- ``queue``: the one seam through which services enqueue Celery tasks by name.
- ``bulk``: fast multi-row inserts (COPY on PostgreSQL, executemany elsewhere).
- ``formfields``: form fields bounded to what the database columns hold.
- ``htmx``: the request type of views that read ``request.htmx``.
- ``api``: DRF permission checks, the shared error responses and paging schema.
- ``pagination``: the API's one pagination class.
"""
