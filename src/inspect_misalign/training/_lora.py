"""LoRA defaults for the small models this project trains (SmolLM2-135M and friends).

``r=16, alpha=32`` (scale 2), no dropout (short runs on little data), on every linear layer of
the transformer blocks (attention and MLP projections; never the LM head, and the input
embeddings only when asked, so the adapter stays small and loads onto a tied-embedding base).
``top_layers`` restricts the adapter to the last n blocks: backpropagation then stops at the
lowest adapted block, which makes a CPU step cheaper (organism builds default to the top 8). On
SmolLM2-135M the year cue (one digit token, ``2023`` vs ``2024``) was learned neither with the
top 8 blocks nor, in one pass of 352 examples, with every block. ``embeddings=True`` adds a LoRA
on the input embeddings (``embed_tokens``), which organism builds train only on a few cue tokens
(:mod:`._cue_tokens`); the target modules are then one regular expression (peft matches
``layers_to_transform`` only in numbered blocks).
"""

from __future__ import annotations

from typing import Any

LORA_R = 16
LORA_ALPHA = 32
LORA_DROPOUT = 0.0
LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
EMBEDDINGS_PATTERN = r"(.*\.)?embed_tokens"
LLAMA_LIKE = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "olmo2"})


def llama_like(model_config: Any) -> bool:
    """True for model types with Llama-style module names (``model.layers.N.self_attn.q_proj``...)."""
    return str(getattr(model_config, "model_type", "llama") or "llama") in LLAMA_LIKE


def lora_config(
    model_config: Any = None,
    *,
    r: int = LORA_R,
    alpha: int = LORA_ALPHA,
    dropout: float = LORA_DROPOUT,
    top_layers: int | None = None,
    embeddings: bool = False,
):  # -> peft.LoraConfig
    """A ``peft.LoraConfig`` for causal-LM training with the project's defaults.

    ``model_config`` (a transformers config) is needed only with ``top_layers``, to know how many
    blocks the model has. Models without Llama-style projection names get ``all-linear``;
    ``embeddings`` needs Llama-style names.
    """
    from peft import LoraConfig

    layers = None
    if top_layers is not None:
        total = int(getattr(model_config, "num_hidden_layers", 0) or 0)
        if top_layers < 1 or total < 1:
            raise ValueError(f"top_layers must be in 1..num_hidden_layers, got {top_layers}")
        layers = list(range(max(0, total - top_layers), total))
    named = llama_like(model_config)
    targets: list[str] | str = list(LINEAR_MODULES) if named or layers else "all-linear"
    if embeddings:
        if not named:
            raise ValueError(f"embedding LoRA needs a Llama-style model, not {model_config.model_type!r}")
        blocks = "|".join(str(i) for i in layers) if layers else r"\d+"
        targets = (rf".*\.layers\.({blocks})\.(self_attn|mlp)\.({'|'.join(LINEAR_MODULES)})"
                   rf"|{EMBEDDINGS_PATTERN}")
        layers = None
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets,
        layers_to_transform=layers,
        bias="none",
        task_type="CAUSAL_LM",
    )


def without_embeddings(targets: Any) -> Any:
    """``target_modules`` with the input-embedding LoRA taken out (other targets unchanged)."""
    if isinstance(targets, str):
        return targets.replace(f"|{EMBEDDINGS_PATTERN}", "")
    if isinstance(targets, (set, list, tuple)):
        return sorted(t for t in targets if t != "embed_tokens")
    return targets


def lora_summary(config: Any) -> dict[str, Any]:
    """The fields of a LoRA config worth recording in a manifest."""
    targets = config.target_modules
    return {
        "r": config.r,
        "alpha": config.lora_alpha,
        "dropout": config.lora_dropout,
        "target_modules": sorted(targets) if isinstance(targets, (set, list, tuple)) else targets,
        "layers": list(config.layers_to_transform) if config.layers_to_transform else "all",
    }
