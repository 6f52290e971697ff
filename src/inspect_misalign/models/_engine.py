"""Wire a resolved checkpoint to a loaded base, its adapter and its batch queue."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from inspect_misalign.models._batcher import Batcher, Request
from inspect_misalign.models._continuous import ContinuousDecoder, streamable
from inspect_misalign.models._default import ensure_default_model
from inspect_misalign.models._generate import GenParams, GenResult, Prompt, run_batch
from inspect_misalign.models._loading import LoadedBase, get_base
from inspect_misalign.models._resolve import ResolvedCheckpoint, check_adapter_base
from inspect_misalign.models._score import ScoreParams, run_score
from inspect_misalign.models._threads import configure_threads, lane_threads, resolve_lanes

_batcher_lock = threading.Lock()
K = TypeVar("K", GenParams, ScoreParams)


def load_engine(
    checkpoint: ResolvedCheckpoint,
    *,
    device: str | None = None,
    dtype: str | None = None,
    threads: Any = None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
    settle: float = 0.02,
    lanes: Any = None,
    also: Callable[[], Sequence[ResolvedCheckpoint]] | None = None,
) -> tuple[LoadedBase, str | None]:
    """Load (or reuse) the base of ``checkpoint`` and its adapter; return (base, adapter name).

    The first load of a base creates its batcher with ``lanes`` (see
    :func:`inspect_misalign.models._threads.resolve_lanes`); later ones share it. The adapters that
    ``also()`` returns once the base is loaded (adapters of other models of this base) are
    loaded first, so that the first batches already see every adapter (and may route them, see
    ``LoadedBase.routing``); one that fails to load is left to its own model to report.
    """
    configure_threads(threads)
    if checkpoint.is_default:
        ensure_default_model()
        if checkpoint.adapter_dir is not None:
            check_adapter_base(checkpoint)  # shapes could not be checked before conversion
    base = get_base(
        checkpoint.base_dir,
        dtype=dtype,
        device=device,
        trust_remote_code=trust_remote_code,
        attn_implementation=attn_implementation,
    )
    for other in also() if also is not None else ():
        if other.adapter_dir is None:
            continue
        try:
            if other.is_default:
                check_adapter_base(other, check_declared=False)
            base.adapter_name(other.adapter_dir)
        except Exception:  # noqa: BLE001 - that model's own load raises it
            pass
    adapter_name = base.adapter_name(checkpoint.adapter_dir)
    with _batcher_lock:  # not base.lock: the worker holds that for whole batches
        if base.batcher is None:
            count, per_lane = resolve_lanes(lanes, base.device)
            base.batcher = Batcher[GenResult](
                lambda requests: _run(base, requests),
                settle=settle,
                name=f"misalign-batcher-{base.path.name}",
                run_stream=lambda first, take, finish: _stream(base, first, take, finish),
                can_stream=lambda key: isinstance(key, GenParams) and streamable(base, key),
                lanes=count,
                lane_setup=(lambda: lane_threads(per_lane)) if count > 1 else None,
                overlap=lambda: base.routing(()),
            )
    return base, adapter_name


def _run(base: LoadedBase, requests: list[Request[GenResult]]) -> list[GenResult]:
    params = requests[0].key
    payloads = [Prompt(*request.payload) for request in requests]
    if isinstance(params, ScoreParams):
        return run_score(base, params, payloads)
    assert isinstance(params, GenParams)
    prompts = [payload.text for payload in payloads]
    adapters = [payload.adapter for payload in payloads]
    seeds = [payload.extra for payload in payloads] if params.seeded else None
    return run_batch(base, params, prompts, adapters, seeds)


def _stream(base: LoadedBase, first: list[Request[GenResult]], take: Any, finish: Any) -> None:
    params = first[0].key
    assert isinstance(params, GenParams)
    rows = base.batcher.lane_batch(first[0].batch_size)
    ContinuousDecoder(base, params, rows, take, finish).run(first)


def submit_key(base: LoadedBase, params: K) -> K:
    """The batch key for a request: LoRA and base requests share batches across adapters."""
    if params.adapter is not None and base.mixable(params.adapter):
        return replace(params, adapter=None)
    return params
