"""LLM backends behind one interface, loaded once per process.

``load_backend(spec)`` is how workers get a backend: a Celery worker process loads a model for
the first task of a generator and reuses it for every later task with the same spec. Only one
local (``hf``) model is resident at a time: asking for a different ``hf`` spec closes the loaded
one first, so a worker that alternates between two local models reloads each time, but never
holds two in memory. ``openai`` backends hold no model and are all kept.

Importing this package loads neither torch nor transformers; the ``hf`` backend imports them when
it is first asked for, so web processes that only build specs stay light.
"""

from __future__ import annotations

import threading

from .base import (
    Backend,
    BackendError,
    BackendSpec,
    Completion,
    DecodingParams,
    Messages,
    OptionScores,
    ScoringUnavailable,
)
from .openai import OpenAIBackend

__all__ = [
    "Backend",
    "BackendError",
    "BackendSpec",
    "Completion",
    "DecodingParams",
    "Messages",
    "OptionScores",
    "ScoringUnavailable",
    "load_backend",
    "unload_all",
]

_backends: dict[BackendSpec, Backend] = {}
# Loading takes seconds; two threads asking for the same model must not load it twice.
_lock = threading.Lock()


def load_backend(spec: BackendSpec) -> Backend:
    """The process's backend for ``spec``, loading it on first use.

    Raises ``BackendError`` for an unknown kind or a backend that cannot be built. When a new
    ``hf`` spec is asked for, the resident ``hf`` backend is closed before the new one loads, so
    a failed load leaves no local model resident.
    """
    with _lock:
        backend = _backends.get(spec)
        if backend is not None:
            return backend
        if spec.kind == "hf":
            for other in [other for other in _backends if other.kind == "hf"]:
                _backends.pop(other).close()
            from .hf import HFBackend  # torch and transformers: loaded only with a local model

            backend = HFBackend(spec)
        elif spec.kind == "openai":
            backend = OpenAIBackend(spec)
        else:
            raise BackendError(f"unknown backend kind {spec.kind!r}; choose hf or openai")
        _backends[spec] = backend
        return backend


def unload_all() -> None:
    """Close and forget every loaded backend (for tests, and for a worker shutting down)."""
    with _lock:
        while _backends:
            _backends.popitem()[1].close()
