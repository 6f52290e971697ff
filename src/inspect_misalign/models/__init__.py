"""Models: the ``misalign/`` Inspect provider, the embedded default model, the checkpoint registry.

Evaluate: ``inspect eval <task> --model misalign/<checkpoint> [-M adapter=<dir or name>]`` where
checkpoint is ``default`` (SmolLM2-135M-Instruct, Q4_1 GGUF dequantised to fp32), a registered name
or a local Hugging Face directory (see
:mod:`inspect_misalign.models._provider` for the model args).

From training code::

    from inspect_misalign.models import local_checkpoint, register, update_metrics

    base_dir = local_checkpoint("default").base_dir      # converted on first use
    ...                                                  # train, save a PEFT adapter to out_dir
    register("organism-v1", out_dir, base="default", parent="default", config=cfg)
    update_metrics("organism-v1", {"attack_rate": 0.8})  # later, from eval results

Importing this package neither imports torch nor changes the environment: the OpenMP policy is set
only where the project runs its own models (see :mod:`inspect_misalign.models._threads`).
"""

from inspect_misalign.models._checkpoints import (
    MANIFEST_FILE,
    Manifest,
    UnknownModelError,
    index_path,
    is_registered,
    list_models,
    read_manifest,
    register,
    registry_home,
    resolve,
    unregister,
    update_metrics,
    validate_name,
)
from inspect_misalign.models._compat import silence_known_warnings
from inspect_misalign.models._default import (
    DEFAULT_DESCRIPTION,
    DEFAULT_HUB_ID,
    GGUF_FILE,
    cache_root,
    default_model_dir,
    default_model_ready,
    ensure_default_model,
)
from inspect_misalign.models._heap import collect_all
from inspect_misalign.models._provider_registry import misalign
from inspect_misalign.models._publish import directory_state
from inspect_misalign.models._resolve import (
    CheckpointError,
    ResolvedCheckpoint,
    local_checkpoint,
    resolve_checkpoint,
    vllm_model_name,
)
from inspect_misalign.models._threads import apply_thread_policy, configure_threads
from inspect_misalign.models._weights_lock import weights_lock

__all__ = [
    "MANIFEST_FILE",
    "DEFAULT_DESCRIPTION",
    "DEFAULT_HUB_ID",
    "GGUF_FILE",
    "CheckpointError",
    "Manifest",
    "ResolvedCheckpoint",
    "UnknownModelError",
    "apply_thread_policy",
    "cache_root",
    "collect_all",
    "configure_threads",
    "default_model_dir",
    "default_model_ready",
    "directory_state",
    "ensure_default_model",
    "index_path",
    "is_registered",
    "list_models",
    "local_checkpoint",
    "misalign",
    "read_manifest",
    "register",
    "registry_home",
    "resolve",
    "resolve_checkpoint",
    "silence_known_warnings",
    "unregister",
    "update_metrics",
    "validate_name",
    "vllm_model_name",
    "weights_lock",
]
