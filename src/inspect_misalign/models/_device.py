"""Which device and dtype a checkpoint loads on: CUDA when there is one, fp32 on a CPU."""

from __future__ import annotations

import torch

from inspect_misalign._errors import MisalignError

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}


def select_device(device: str | None = None) -> str:
    """``device`` if given, else ``cuda:0`` when CUDA is available, else ``cpu``."""
    if device:
        return "cuda:0" if device == "cuda" else device
    return "cuda:0" if torch.cuda.is_available() else "cpu"


def select_dtype(dtype: str | None, device: str) -> torch.dtype | str:
    """``dtype`` by name (``auto`` keeps the checkpoint's); default bf16 on CUDA, fp32 elsewhere."""
    if dtype is None:
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype == "auto":
        return "auto"
    if dtype not in _DTYPES:
        raise MisalignError(f"unknown dtype {dtype!r}; use one of auto, {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


__all__ = ["select_device", "select_dtype"]
