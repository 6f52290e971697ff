"""Process-wide cache of loaded bases; PEFT adapters loaded onto them and switched in place.

A base is loaded once per process per (path, dtype, device), however many Inspect models or
adapters use it. Each adapter is loaded onto that base under its own adapter name
(``PeftModel.load_adapter``) and activated per batch with ``set_adapter``; the base alone runs
with the adapters disabled. Only safetensors are read (``use_safetensors=True``), and remote code
runs only when asked (``trust_remote_code=True``).

Adapter directories are standard PEFT directories (``adapter_config.json`` +
``adapter_model.safetensors``); nothing here writes into them, so the same directories work with
Inspect's ``vllm/<base>`` provider and vLLM's LoRA support.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import inspect_misalign.models._threads  # noqa: F401,I001  (OpenMP policy before torch loads)
from inspect_misalign.models._resolve import CheckpointError, validate_model_dir

BASE_LOADS = 0
"""How many times base weights were loaded in this process (tests count on it)."""
ADAPTER_LOADS = 0
"""How many adapters were loaded in this process."""

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

_bases: dict[tuple[str, str, str], LoadedBase] = {}
_bases_lock = threading.Lock()
_key_locks: dict[tuple[str, str, str], threading.Lock] = {}


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
        raise ValueError(f"unknown dtype {dtype!r}; use one of auto, {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


@dataclass(eq=False)
class LoadedBase:
    """A loaded base model and tokenizer, the adapters loaded onto it, and its batcher."""

    path: Path
    device: str
    dtype: torch.dtype | str
    model: Any
    tokenizer: Any
    adapters: dict[str, str] = field(default_factory=dict)  # adapter dir -> adapter name
    lock: threading.RLock = field(default_factory=threading.RLock)
    batcher: Any = None
    _peft: Any = None

    def adapter_name(self, adapter_dir: Path | None) -> str | None:
        """The adapter name for ``adapter_dir`` on this base, loading it the first time."""
        if adapter_dir is None:
            return None
        key = str(Path(adapter_dir).resolve())
        with self.lock:
            if key not in self.adapters:
                self._load_adapter(Path(key), f"adapter_{len(self.adapters)}")
            return self.adapters[key]

    @property
    def generator(self) -> Any:
        """The module to call ``generate`` on (the PEFT wrapper once adapters are loaded)."""
        return self._peft if self._peft is not None else self.model

    def mixable(self, adapter: str | None) -> bool:
        """True if requests for ``adapter`` may share a batch with other adapters (LoRA only)."""
        if adapter is None:
            return True
        with self.lock:
            config = self._peft.peft_config.get(adapter) if self._peft is not None else None
        peft_type = getattr(config, "peft_type", None)
        return str(getattr(peft_type, "value", peft_type)) == "LORA"

    @contextmanager
    def activate(self, adapter: str | None, mixed: bool = False) -> Iterator[None]:
        """Make ``adapter`` (or the bare base, for None) active; hold :attr:`lock` while active.

        ``mixed=True`` leaves the adapters as they are: the caller passes per-row
        ``adapter_names`` to ``generate``.
        """
        with self.lock:
            if mixed:
                yield
                return
            if self._peft is None:
                if adapter is not None:
                    raise RuntimeError(f"adapter {adapter} is not loaded")
                yield
                return
            if adapter is None:
                with self._peft.disable_adapter():
                    yield
                return
            if self._peft.active_adapter != adapter:
                self._peft.set_adapter(adapter)
            yield

    def _load_adapter(self, adapter_dir: Path, name: str) -> None:
        global ADAPTER_LOADS
        from peft import PeftModel

        if self._peft is None:
            self._peft = PeftModel.from_pretrained(
                self.model, str(adapter_dir), adapter_name=name, is_trainable=False
            )
        else:
            self._peft.load_adapter(str(adapter_dir), adapter_name=name, is_trainable=False)
        self._peft.eval()
        self.adapters[str(adapter_dir)] = name
        ADAPTER_LOADS += 1


def get_base(
    path: Path,
    dtype: str | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
) -> LoadedBase:
    """The loaded base for ``path``, loading it on first use (once per process and settings)."""
    resolved_device = select_device(device)
    resolved_dtype = select_dtype(dtype, resolved_device)
    key = (str(Path(path).resolve()), str(resolved_dtype), resolved_device)
    with _bases_lock:
        if key in _bases:
            return _bases[key]
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        with _bases_lock:
            if key in _bases:
                return _bases[key]
        base = _load_base(
            Path(key[0]), resolved_dtype, resolved_device, trust_remote_code, attn_implementation
        )
        with _bases_lock:
            _bases[key] = base
        return base


def loaded_bases() -> list[LoadedBase]:
    """The bases loaded in this process."""
    with _bases_lock:
        return list(_bases.values())


def unload_all() -> None:
    """Forget every loaded base (their memory is freed once no model holds them)."""
    with _bases_lock:
        _bases.clear()
        _key_locks.clear()


def _load_base(
    path: Path,
    dtype: torch.dtype | str,
    device: str,
    trust_remote_code: bool,
    attn_implementation: str | None,
) -> LoadedBase:
    global BASE_LOADS
    from transformers import AutoModelForCausalLM, AutoTokenizer

    validate_model_dir(path)
    kwargs: dict[str, Any] = dict(
        dtype=dtype,
        use_safetensors=True,
        trust_remote_code=trust_remote_code,
        local_files_only=True,
    )
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if device != "cpu":
        kwargs["device_map"] = device
    try:
        with _quiet_progress():
            model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(
            str(path), trust_remote_code=trust_remote_code, local_files_only=True
        )
    except (OSError, ValueError) as ex:
        first = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
        raise CheckpointError(f"cannot load model from {path}: {first}") from ex
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    BASE_LOADS += 1
    return LoadedBase(path=path, device=device, dtype=dtype, model=model, tokenizer=tokenizer)


@contextmanager
def _quiet_progress() -> Iterator[None]:
    """Hide transformers' weight-loading progress bar (it garbles Inspect's display)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def inference_context() -> Any:
    """``torch.inference_mode()`` (a no-op context when torch lacks it)."""
    return torch.inference_mode() if hasattr(torch, "inference_mode") else nullcontext()
