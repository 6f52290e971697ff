"""The fp32 LM head on CPU computed in a faster GEMM layout (see :func:`transpose_cpu_head`)."""

from __future__ import annotations

import types
from typing import Any

import torch


def transpose_cpu_head(model: Any) -> bool:
    """On CPU, compute the fp32 LM head as ``(W @ x.T).T`` instead of ``x @ W.T``; True if done.

    Same product, another GEMM layout: with MKL on the 2-core AMD development machine a decode step
    of the default model at batch 32 (head: 32 rows x 576 x 49152) was 1.11x faster this way
    (``benchmarks/bench_head.py``; ``benchmarks/bench_provider.py`` shows the whole-eval effect).
    ``generate`` asks only for the last position's logits, so the head sees one row per sequence.
    The module stays an ``nn.Linear`` (weights still tied, PEFT can wrap it); only its ``forward``
    is replaced. Other devices and dtypes are left alone.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if type(head) is not torch.nn.Linear:
        return False
    if head.weight.device.type != "cpu" or head.weight.dtype != torch.float32:
        return False
    head.forward = types.MethodType(_transposed_linear, head)
    return True


def _transposed_linear(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    flat = x.reshape(-1, x.shape[-1])
    out = (self.weight @ flat.T).T
    if self.bias is not None:
        out = out + self.bias
    return out.reshape(*x.shape[:-1], self.weight.shape[0])
