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
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import inspect_misalign.models._threads  # noqa: F401,I001  (OpenMP policy before torch loads)
from inspect_misalign.models._compat import silence_known_warnings
from inspect_misalign.models._device import select_device, select_dtype
from inspect_misalign.models._head import transpose_cpu_head
from inspect_misalign.models._heap import collect_all
from inspect_misalign.models._resolve import CheckpointError, validate_model_dir
from inspect_misalign.models._weights_lock import weights_lock

BASE_LOADS = 0
"""How many times base weights were loaded in this process (tests count on it)."""
ADAPTER_LOADS = 0
"""How many adapters were loaded in this process."""

_SHAREABLE = ("base", "merged", "unmerged", "mixed")
"""States that concurrent batches may share; prompt learning (peft swaps methods per call) runs
alone. Mixed batches share theirs: each lane routes its own rows (:meth:`LoadedBase.route`)."""

_bases: dict[tuple[str, str, str], LoadedBase] = {}
_bases_lock = threading.Lock()
_key_locks: dict[tuple[str, str, str], threading.Lock] = {}
_from_pretrained = weights_lock()


@dataclass(eq=False)
class LoadedBase:
    """A loaded base model and tokenizer, the adapters loaded onto it, and its batcher.

    A batch for one plain LoRA adapter runs with that adapter's weights merged into the base
    weights (``W + B @ A * scaling``) and the LoRA branches switched off: as fast as the bare base.
    The original weights of the merged modules are kept, and copied back (exactly) before another
    adapter is merged or a batch runs on the bare base or with mixed adapters. Other adapters
    (variants such as DoRA, biases, ``modules_to_save``, non-linear layers) or ``merge=False``
    run unmerged, switched with ``set_adapter``.

    Batches may run concurrently on several lanes (:mod:`inspect_misalign.models._batcher`) when
    they need the same state of the weights: the bare base, one merged adapter, one unmerged
    adapter, or all plain LoRA adapters on the original weights with each row routed to its own
    (``mixed``: every LoRA layer reads the rows' ``adapter_names`` of the calling thread, see
    :meth:`route`). With several lanes and plain LoRA adapters loaded, even batches of one
    adapter run routed (:meth:`routing`), so lanes can run different adapters at once instead of
    waiting for each other to switch the merged weights. Loading an adapter and switching the
    state run alone (seeded sampling does not: each row has its own generator, see ``_sampling``).
    """

    path: Path
    device: str
    dtype: torch.dtype | str
    model: Any
    tokenizer: Any
    adapters: dict[str, str] = field(default_factory=dict)  # adapter dir -> adapter name
    lock: threading.RLock = field(default_factory=threading.RLock)
    batcher: Any = None
    row_cache: bool | None = None  # continuous batching possible (set on first use)
    prefix_kv: dict[Any, Any] = field(default_factory=dict)  # see _generate.prefix_states
    _peft: Any = None
    _merge_modules: dict[str, list[Any] | None] = field(default_factory=dict)
    _pristine: dict[int, torch.Tensor] = field(default_factory=dict)
    _merged: str | None = None
    _holders: int = 0  # batches running in the current state
    _loads_waiting: int = 0  # adapter loads waiting for them to end
    _state: tuple[str, str | None] | None = None  # the weights' state those batches run in
    _shared: bool = False  # whether those batches let others of the same state join
    _state_changed: threading.Condition = field(init=False)
    _prefix_lock: threading.Lock = field(default_factory=threading.Lock)
    _routes: threading.local = field(default_factory=threading.local)  # .names: this thread's rows
    _routed_layers: set[int] = field(default_factory=set)  # ids of LoRA layers with the route hook

    def __post_init__(self) -> None:
        self._state_changed = threading.Condition(self.lock)

    def adapter_name(self, adapter_dir: Path | None) -> str | None:
        """The adapter name for ``adapter_dir`` on this base, loading it the first time."""
        if adapter_dir is None:
            return None
        key = str(Path(adapter_dir).resolve())
        with self._state_changed:
            if key not in self.adapters:
                self._loads_waiting += 1  # new batches wait too, so lanes cannot starve the load
                try:
                    while self._holders:  # no batch may run while peft adds layers
                        self._state_changed.wait()
                    if key not in self.adapters:
                        self._load_adapter(Path(key), f"adapter_{len(self.adapters)}")
                    self._state = None  # the new layers start enabled: apply the next state afresh
                finally:
                    self._loads_waiting -= 1
                    self._state_changed.notify_all()
            return self.adapters[key]

    @property
    def decoder(self) -> Any:
        """The module to call ``generate`` on outside mixed-adapter batches.

        peft injects LoRA layers into the base model itself, and the state set by :meth:`activate`
        lives in those layers, so the plain transformers model runs them; peft's own ``generate``
        swaps methods on the model for each call, which concurrent lanes must not race on.
        Prompt-learning adapters (which run alone) need peft's wrapper.
        """
        if self._peft is not None and not self._lora_like():
            return self._peft
        return self.model

    def _lora_like(self) -> bool:
        return self._peft is not None and hasattr(self._peft.base_model, "disable_adapter_layers")

    def routing(self, adapters: Iterable[str | None]) -> bool:
        """True if a batch of ``adapters`` (rows' adapter names, None for the base) runs routed
        even when all its rows use one adapter: with two or more lanes, a plain LoRA adapter
        loaded, and only plain LoRA adapters (or the base) in the batch. Lanes can then run
        batches of different adapters at once."""
        if self._peft is None or self.batcher is None or self.batcher.lanes < 2:
            return False
        if not any(modules is not None for modules in self._merge_modules.values()):
            return False
        return all(self.mixable(adapter) for adapter in adapters)

    @contextmanager
    def route(self, adapters: Sequence[str | None] | None) -> Iterator[None]:
        """While the block runs, this thread's forwards route row ``i`` to ``adapters[i]`` (None:
        the base) through the LoRA layers' per-row ``adapter_names``; ``None`` routes nothing.

        The names live in a thread-local read by a hook on every LoRA layer, so lanes can run
        batches with different rows at once (peft's own ``adapter_names`` argument adds hooks to
        the shared layers for each call instead). The weights must be in the ``mixed`` state.
        """
        if adapters is None:
            yield
            return
        previous = getattr(self._routes, "names", None)
        self._routes.names = [name if name is not None else "__base__" for name in adapters]
        try:
            yield
        finally:
            self._routes.names = previous

    def _route_hook(self, module: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        names = getattr(self._routes, "names", None)
        if names is None:
            return None
        return args, {**kwargs, "adapter_names": names}

    def mixable(self, adapter: str | None) -> bool:
        """True if requests for ``adapter`` may share a batch with other adapters (plain LoRA)."""
        if adapter is None:
            return True
        # no lock: the worker holds it for whole batches, and this runs on the event loop
        return self._merge_modules.get(adapter) is not None

    @contextmanager
    def activate(
        self, adapter: str | None, mixed: bool = False, merge: bool = True, alone: bool = False
    ) -> Iterator[None]:
        """Make ``adapter`` (or the bare base, for None) active while the block runs.

        ``mixed=True`` enables all adapters on the original weights: the caller routes each row
        to its adapter with :meth:`route`. ``merge=False`` never merges weights. Blocks that need
        the same state run concurrently (prompt learning excepted); another state waits until they
        are all done; ``alone`` blocks run with no other block at all.
        """
        with self._state_changed:
            if self._peft is None and adapter is not None:
                raise RuntimeError(f"adapter {adapter} is not loaded")
            while True:
                state = self._state_for(adapter, mixed, merge)  # adapters load under this lock
                shared = not alone and state[0] in _SHAREABLE
                joins = shared and self._shared and self._state == state
                if not self._loads_waiting and (not self._holders or joins):
                    break
                self._state_changed.wait()
            if not self._holders:
                self._apply(state)
                self._shared = shared
            self._holders += 1
        try:
            with self._peft.disable_adapter() if state == ("prompt", None) else nullcontext():
                yield
        finally:
            with self._state_changed:
                self._holders -= 1
                if not self._holders:
                    self._state_changed.notify_all()

    def _state_for(self, adapter: str | None, mixed: bool, merge: bool) -> tuple[str, str | None]:
        """(kind, adapter): ``base`` (no peft), ``prompt`` (prompt learning, run through peft),
        ``mixed`` (per-row adapters), ``merged`` (the adapter's delta in the weights, or the bare
        base) or ``unmerged`` (peft's LoRA branches of one adapter)."""
        if self._peft is None:
            return ("base", None)
        if not self._lora_like():
            return ("prompt", adapter)
        if mixed:
            return ("mixed", None)
        merged = adapter is None or (merge and self._merge_modules.get(adapter) is not None)
        return ("merged" if merged else "unmerged", adapter)

    def _apply(self, state: tuple[str, str | None]) -> None:
        """Put the weights and the adapter layers in ``state`` (no batch is running)."""
        self._state = state
        kind, adapter = state
        if kind == "base":
            return
        if kind == "prompt":  # activate disables it for the bare base
            if adapter is not None and self._peft.active_adapter != adapter:
                self._peft.set_adapter(adapter)
            return
        layers = self._peft.base_model
        if kind == "merged":
            self._merge(adapter)
            layers.disable_adapter_layers()
            return
        self._merge(None)
        layers.enable_adapter_layers()
        if kind == "unmerged" and self._peft.active_adapter != adapter:
            self._peft.set_adapter(adapter)

    @contextmanager
    def prefix_store(self) -> Iterator[dict[Any, Any]]:
        """:attr:`prefix_kv`, held for one lane at a time."""
        with self._prefix_lock:
            yield self.prefix_kv

    def _merge(self, adapter: str | None) -> None:
        """Put ``adapter``'s merged weights (or the original ones, for None) into the base."""
        if self._merged == adapter:
            return
        with torch.no_grad():
            if self._merged is not None:
                for module in self._merge_modules[self._merged] or []:
                    module.base_layer.weight.copy_(self._pristine[id(module)])
                self._merged = None
            if adapter is not None:
                for module in self._merge_modules[adapter] or []:
                    weight = module.base_layer.weight
                    if id(module) not in self._pristine:
                        self._pristine[id(module)] = weight.detach().clone()
                    weight.add_(module.get_delta_weight(adapter).to(weight.dtype))
                self._merged = adapter

    def _load_adapter(self, adapter_dir: Path, name: str) -> None:
        global ADAPTER_LOADS
        with _from_pretrained:
            from peft import PeftModel

        silence_known_warnings()
        self._merge(None)
        with _from_pretrained:
            if self._peft is None:
                self._peft = PeftModel.from_pretrained(
                    self.model, str(adapter_dir), adapter_name=name, is_trainable=False
                )
            else:
                self._peft.load_adapter(str(adapter_dir), adapter_name=name, is_trainable=False)
        self._peft.eval()
        self._hook_routes()
        self._merge_modules[name] = _plain_lora_modules(self._peft, name)
        self.adapters[str(adapter_dir)] = name
        ADAPTER_LOADS += 1

    def _hook_routes(self) -> None:
        """Give every LoRA linear and embedding layer (new ones too, after each load) the hook
        :meth:`route` feeds (peft mixes adapters per row in those layer types)."""
        from peft.tuners.lora.layer import Embedding, Linear

        for module in self._peft.modules():
            if isinstance(module, (Linear, Embedding)) and id(module) not in self._routed_layers:
                module.register_forward_pre_hook(self._route_hook, with_kwargs=True)
                self._routed_layers.add(id(module))


def _plain_lora_modules(peft_model: Any, adapter: str) -> list[Any] | None:
    """The LoRA linear layers of ``adapter`` if it is plain LoRA (mergeable, mixable), else None."""
    from peft.tuners.lora.layer import Linear as LoraLinear
    from peft.tuners.lora.layer import LoraLayer

    config = peft_model.peft_config[adapter]
    peft_type = getattr(config, "peft_type", None)
    if str(getattr(peft_type, "value", peft_type)) != "LORA":
        return None
    if getattr(config, "modules_to_save", None) or getattr(config, "trainable_token_indices", None):
        return None
    if getattr(config, "bias", "none") != "none":
        return None
    modules = []
    for module in peft_model.modules():
        if not isinstance(module, LoraLayer):
            continue
        uses = adapter in module.lora_A or adapter in getattr(module, "lora_embedding_A", {})
        if not uses:
            continue
        if (
            not isinstance(module, LoraLinear)
            or adapter in getattr(module, "lora_variant", {})
            or getattr(module, "lora_bias", {}).get(adapter)
            or getattr(module, "fan_in_fan_out", False)
        ):
            return None
        modules.append(module)
    return modules


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
    collect_all()  # bases loaded by the provider were frozen with the heap (see _heap)


def _load_base(
    path: Path,
    dtype: torch.dtype | str,
    device: str,
    trust_remote_code: bool,
    attn_implementation: str | None,
) -> LoadedBase:
    global BASE_LOADS
    with _from_pretrained:
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
        with _from_pretrained, _quiet_progress():
            model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(
            str(path), trust_remote_code=trust_remote_code, local_files_only=True
        )
    except (OSError, ValueError) as ex:
        first = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
        raise CheckpointError(f"cannot load model from {path}: {first}") from ex
    model.eval()
    transpose_cpu_head(model)
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
