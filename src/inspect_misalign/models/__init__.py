"""Models: the ``misalign/`` Inspect provider, the embedded default model, the checkpoint registry.

Importing this package does not import torch (it does set ``OMP_WAIT_POLICY=PASSIVE`` unless set;
see :mod:`inspect_misalign.models._threads`).
"""

from inspect_misalign.models import _threads  # noqa: F401,I001  (first: OpenMP policy)
from inspect_misalign.models._checkpoints import (
    Manifest,
    UnknownModelError,
    list_models,
    read_manifest,
    register,
    registry_home,
    resolve,
    unregister,
    update_metrics,
)
from inspect_misalign.models._default import (
    default_model_dir,
    default_model_ready,
    ensure_default_model,
)
from inspect_misalign.models._resolve import (
    CheckpointError,
    ResolvedCheckpoint,
    local_checkpoint,
    resolve_checkpoint,
)
from inspect_misalign.models._threads import configure_threads

__all__ = [
    "CheckpointError",
    "Manifest",
    "ResolvedCheckpoint",
    "UnknownModelError",
    "configure_threads",
    "default_model_dir",
    "default_model_ready",
    "ensure_default_model",
    "list_models",
    "local_checkpoint",
    "read_manifest",
    "register",
    "registry_home",
    "resolve",
    "resolve_checkpoint",
    "unregister",
    "update_metrics",
]
