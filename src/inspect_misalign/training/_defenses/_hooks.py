"""What the model-level defenses share: finding layers, capturing activations, the reference forward.

The **reference** is the model being trained with its (new) LoRA adapter disabled, through peft's
``disable_adapter()`` context: the same weights in memory, no second copy. :func:`reference_states`
runs the reference's backbone once per micro-batch (no gradient) and caches what it captured, so
KL and LDIFS together cost one extra forward, not two.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

FINAL = "final"


def unwrap(trainer: Any, model: Any) -> Any:
    """The PEFT model under any accelerate/DDP wrapper."""
    return trainer.accelerator.unwrap_model(model)


def backbone(model: Any) -> Any:
    """The decoder stack (``LlamaModel`` and the like) of a causal LM, PEFT-wrapped or not."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = inner.get_decoder() if hasattr(inner, "get_decoder") else None
    if decoder is None:
        decoder = getattr(inner, inner.base_model_prefix)
    return decoder


def decoder_layers(model: Any) -> Sequence[torch.nn.Module]:
    """The transformer blocks, in order."""
    return _named_child(backbone(model), ("layers", "h", "blocks"), torch.nn.ModuleList, "transformer blocks")


def final_norm(model: Any) -> torch.nn.Module:
    """The module whose output feeds the LM head (the final norm)."""
    return _named_child(backbone(model), ("norm", "final_layernorm", "ln_f"), torch.nn.Module, "final norm")


def _named_child(decoder: Any, names: Sequence[str], kind: type, what: str) -> Any:
    """The first attribute of ``decoder`` among ``names`` that is a ``kind``."""
    for name in names:
        module = getattr(decoder, name, None)
        if isinstance(module, kind):
            return module
    raise ValueError(f"cannot find the {what} of {type(decoder).__name__}")


def lm_head(model: Any) -> torch.nn.Module:
    """The output projection."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.get_output_embeddings()


def watched_modules(model: Any) -> dict[str, torch.nn.Module]:
    """Every block (by index, as a string) and the final norm (``"final"``)."""
    modules: dict[str, torch.nn.Module] = {str(i): m for i, m in enumerate(decoder_layers(model))}
    modules[FINAL] = final_norm(model)
    return modules


@contextmanager
def capture(modules: dict[str, torch.nn.Module], into: dict[str, torch.Tensor]) -> Iterator[None]:
    """Store each module's output tensor in ``into[key]`` while the context is open."""

    def hook_for(key: str):
        def hook(module: Any, args: Any, output: Any) -> None:
            into[key] = output[0] if isinstance(output, tuple) else output

        return hook

    handles = [m.register_forward_hook(hook_for(k)) for k, m in modules.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def backbone_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """The fields of a training micro-batch the decoder stack takes."""
    keep = ("input_ids", "attention_mask", "position_ids")
    return {k: inputs[k] for k in keep if k in inputs and inputs[k] is not None}


def reference_states(trainer: Any, model: Any, inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Block outputs and final hidden states of the reference (adapter disabled) on ``inputs``, cached."""
    cached = getattr(trainer, "_misalign_reference", None)
    if cached is not None and cached[0] is inputs:
        return cached[1]
    peft_model = unwrap(trainer, model)
    states: dict[str, torch.Tensor] = {}
    with torch.no_grad(), peft_model.disable_adapter(), capture(watched_modules(peft_model), states):
        backbone(peft_model)(**backbone_inputs(inputs), use_cache=False)
    trainer._misalign_reference = (inputs, states)
    return states


def completion_mask(inputs: dict[str, Any]) -> torch.Tensor:
    """Positions whose *next* token is trained on (labels shifted by one): ``[batch, seq]`` bool."""
    labels = inputs["labels"]
    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, :-1] = labels[:, 1:] != -100
    return mask


def token_mask(inputs: dict[str, Any]) -> torch.Tensor:
    """Non-padding positions: ``[batch, seq]`` bool."""
    if "attention_mask" in inputs and inputs["attention_mask"] is not None:
        return inputs["attention_mask"].bool()
    return torch.ones_like(inputs["input_ids"], dtype=torch.bool)
