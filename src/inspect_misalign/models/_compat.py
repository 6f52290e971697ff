"""The transformers cache API across versions, and the one place where known warnings are silenced.

transformers 5 renamed the KV-cache argument and output field ``past_key_values`` to ``cache``
(the old names still work, with a FutureWarning per call); 4.x knows only ``past_key_values``.
:func:`cache_kwarg` and :func:`output_cache` use whichever the installed version has, so neither
name warns.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any


def cache_kwarg(model: Any) -> str:
    """The name under which ``model``'s ``forward`` (and ``generate``) take a KV cache."""
    forward = getattr(model, "forward", None)
    try:
        parameters = inspect.signature(forward).parameters if forward is not None else {}
    except (TypeError, ValueError):
        parameters = {}
    return "cache" if "cache" in parameters else "past_key_values"


def output_cache(output: Any) -> Any:
    """The KV cache a forward pass returned (``output.cache``, else ``output.past_key_values``)."""
    cache = output.get("cache") if hasattr(output, "get") else None
    return cache if cache is not None else output.past_key_values


def silence_known_warnings() -> None:
    """Install filters for the warnings that are understood and harmless here.

    Filters, not ``catch_warnings``: that swaps the process-wide filter list and is not safe while
    other threads (lanes, the loading thread) run. The filters match these messages only:

    - transformers 5's ``is_gradient_checkpointing is deprecated``: peft (0.21 here) reads that
      attribute of the base model in ``PeftModel.__init__``, so every adapter load warned; nothing
      here sets or relies on gradient checkpointing at inference.
    - peft's ``Model has `tie_word_embeddings=True` and a tied layer is part of the adapter``:
      issued on loading an adapter with a LoRA on the input embeddings of a model whose output head
      shares them (the organisms' cue-token LoRA on SmolLM2), because peft then does not give the
      head the same LoRA (``ensure_weight_tying``). The organisms were trained exactly that way
      (peft's default), so inference matches training; the provider never merges embedding LoRA
      into the shared matrix (only plain LoRA linear layers are merged, see
      ``_loading._plain_lora_modules``).
    """
    # re-adding an identical filter replaces it (no growth); calling this at every load keeps the
    # filters in place even where a caller restored an older filter list (pytest does, per test)
    warnings.filterwarnings(
        "ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning
    )
    warnings.filterwarnings("ignore", message=r"Model has `tie_word_embeddings=True` and a tied layer")
