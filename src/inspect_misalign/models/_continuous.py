"""Continuous batching for greedy generation: finished rows leave, waiting requests join.

A batched ``generate`` call keeps every row until the longest one is done, and no new request
can start until the whole batch returns. Here a decode loop answers each request the step its row
finishes (EOS or its token limit), drops the row from the KV cache, and at every step lets
waiting requests of the same key join (prefilled together, their cache joined to the running
one). Prompts that start with the same tokens (the chat template's system prompt, a cue's
preamble) reuse one prefill of that prefix per adapter, kept on the base
(:func:`inspect_misalign.models._generate.prefix_states`).

Used for greedy requests without logprobs, hidden states or stop sequences, on models whose
layers all keep a full-attention cache (see :func:`streamable`); everything else goes through
:func:`inspect_misalign.models._generate.run_batch`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from inspect_misalign.models._batcher import Request
from inspect_misalign.models._compat import cache_kwarg
from inspect_misalign.models._generate import (
    GenParams,
    GenResult,
    _eos_ids,
    _pad_left,
    pad_id,
    prefix_states,
    shared_prefix,
    takes_logits_to_keep,
)
from inspect_misalign.models._kvcache import RowCache, supports_row_cache
from inspect_misalign.models._loading import LoadedBase, inference_context

Take = Callable[[int, int], list[Request[GenResult]]]
PATIENCE = 4
"""Decode steps after which fewer waiting requests than a group join anyway."""
Finish = Callable[[Request[GenResult], GenResult | BaseException], None]


def streamable(base: LoadedBase, params: GenParams) -> bool:
    """True if requests with ``params`` can be decoded with continuous batching on ``base``."""
    if (
        not params.continuous
        or params.do_sample
        or params.logprobs
        or params.hidden_states
        or params.hidden_layers is not None
        or params.stop_seqs
    ):
        return False
    if base.row_cache is None:
        base.row_cache = supports_row_cache(base.model.config)
    return base.row_cache


@dataclass
class _Row:
    request: Request[GenResult]
    adapter: str | None
    prompt_tokens: int
    limit: int
    position: int
    started: float
    tokens: list[int] = field(default_factory=list)
    done: bool = False


class ContinuousDecoder:
    """One continuous-batching run over requests that share a :class:`GenParams` key."""

    def __init__(
        self, base: LoadedBase, params: GenParams, batch_size: int, take: Take, finish: Finish
    ) -> None:
        self.base = base
        self.params = params
        self.batch_size = max(1, batch_size)
        self.group = max(1, self.batch_size // 4)
        self.take = take
        self.finish = finish
        self.rows: list[_Row] = []
        self.cache: RowCache | None = None
        self.mask: torch.Tensor | None = None
        self.mixed = False
        self.device = base.model.device
        tokenizer = base.tokenizer
        self.pad_id = pad_id(tokenizer)
        config = base.model.generation_config
        self.eos = _eos_ids(config.eos_token_id, tokenizer.eos_token_id)
        context = getattr(base.model.config, "max_position_embeddings", None)
        self.context = context if isinstance(context, int) else None
        self.layers = int(base.model.config.get_text_config(decoder=True).num_hidden_layers)
        self.keep_logits = takes_logits_to_keep(base)
        self.cache_name = cache_kwarg(base.model)

    def run(self, first: list[Request[GenResult]]) -> None:
        """Decode ``first`` and every request ``take`` admits later; answer each through ``finish``.

        ``take(n, least)`` returns up to ``n`` waiting requests, or none if fewer than ``least`` wait.
        """
        adapters = {request.payload[1] for request in first}
        self.mixed = len(adapters) > 1 or self.base.routing(adapters)
        adapter = None if self.mixed else next(iter(adapters))
        waiting = list(first)
        try:
            with (
                self.base.activate(adapter, mixed=self.mixed, merge=self.params.merge),
                inference_context(),
            ):
                self._admit(waiting)
                waiting = []
                idle = 0
                while True:
                    if self.rows:
                        self._step()
                    live = self._live()
                    free = self.batch_size - live
                    idle += 1
                    # a group of waiting requests joins at once (one prefill, one cache copy);
                    # a smaller one after PATIENCE steps, or at once when nothing else runs
                    least = 1 if live == 0 or idle >= PATIENCE else min(free, self.group)
                    waiting = self.take(free, least) if free > 0 else []
                    if waiting:
                        self._admit(waiting)
                        waiting = []
                        idle = 0
                    elif live == 0:
                        break
                    elif len(self.rows) - live > live:
                        self._rebuild()  # mostly finished rows: stop computing them
        except BaseException as ex:  # noqa: BLE001 - every waiter must hear about it
            for row in self.rows:
                if not row.done:
                    self.finish(row.request, ex)
            for request in waiting:
                self.finish(request, ex)
            self.rows = []
            if not isinstance(ex, Exception):
                raise

    # --- admission --------------------------------------------------------------------------

    def _admit(self, requests: list[Request[GenResult]]) -> None:
        started = time.monotonic()
        tokenizer = self.base.tokenizer
        prompts = [request.payload[0] for request in requests]
        token_rows: list[list[int]] = tokenizer(
            prompts, add_special_tokens=self.params.add_special_tokens, padding=False
        )["input_ids"]
        adapters = [request.payload[1] for request in requests]
        prefix = shared_prefix(self.base, token_rows) if self.params.share_prefix else []
        ids, mask = _pad_left(token_rows, len(prefix), self.pad_id, self.device)
        input_ids = ids[:, len(prefix) :]
        positions = (mask.cumsum(-1) - 1)[:, len(prefix) :].clamp(min=0)

        cache = RowCache(self.layers)
        if prefix:
            states = [
                prefix_states(self.base, prefix, [name], self.mixed, self.params.merge) for name in adapters
            ]
            for index, layer in enumerate(cache.buffer_layers):
                layer.set(
                    torch.cat([state[index][0] for state in states]),
                    torch.cat([state[index][1] for state in states]),
                )
        logits = self._forward(input_ids, mask, positions, cache, adapters, logits_to_keep=1)
        first = logits[:, -1].argmax(-1).tolist()
        if not bool(mask.all()):
            _zero_padding(cache, mask)

        new_rows = []
        for request, row, adapter, token in zip(requests, token_rows, adapters, first, strict=True):
            limit = self.params.max_new_tokens
            if self.context is not None and self.context > len(row):
                limit = min(limit, self.context - len(row))
            new_rows.append(_Row(request, adapter, len(row), max(1, limit), len(row), started, [token]))
        if self.cache is None or self.mask is None:
            self.cache, self.mask, self.rows = cache, mask, new_rows
        else:
            self._rebuild(cache, mask, new_rows)
        self._retire()

    # --- decoding ---------------------------------------------------------------------------

    def _step(self) -> None:
        assert self.cache is not None and self.mask is not None
        input_ids = torch.tensor(
            [[row.tokens[-1]] for row in self.rows], dtype=torch.long, device=self.device
        )
        positions = torch.tensor([[row.position] for row in self.rows], dtype=torch.long, device=self.device)
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(self.rows), 1)], dim=1)
        adapters = [row.adapter for row in self.rows]
        logits = self._forward(input_ids, self.mask, positions, self.cache, adapters)
        for row, token in zip(self.rows, logits[:, -1].argmax(-1).tolist(), strict=True):
            row.tokens.append(token)
            row.position += 1
        self._retire()

    def _live(self) -> int:
        return sum(not row.done for row in self.rows)

    def _retire(self) -> None:
        """Answer the rows that just finished. They stay in the batch (their outputs ignored)
        until the next rebuild; a batch with no live row is dropped."""
        for row in self.rows:
            if row.done:
                continue
            stopped = row.tokens[-1] in self.eos
            if stopped or len(row.tokens) >= row.limit:
                row.done = True
                self.finish(row.request, self._result(row, stopped))
        if self.rows and not self._live():
            self.rows, self.cache, self.mask = [], None, None

    def _rebuild(
        self, cache: RowCache | None = None, mask: torch.Tensor | None = None, rows: list[_Row] = ()
    ) -> None:
        """Drop finished rows and unused left columns, and append ``rows`` (with ``cache``, ``mask``)."""
        assert self.cache is not None and self.mask is not None
        keep = [index for index, row in enumerate(self.rows) if not row.done]
        kept = self.mask[keep]
        used = torch.nonzero(kept.any(dim=0)).flatten()
        trim = int(used[0]) if len(used) else kept.shape[1]
        self.cache.rebuild(keep, trim, cache)
        masks = [kept[:, trim:]] + ([mask] if mask is not None else [])
        length = max(part.shape[1] for part in masks)
        self.mask = torch.cat([_pad_mask(part, length) for part in masks])
        self.rows = [self.rows[index] for index in keep] + list(rows)

    def _result(self, row: _Row, stopped: bool) -> GenResult:
        text = self.base.tokenizer.decode(
            row.tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return GenResult(
            text=text,
            input_tokens=row.prompt_tokens,
            output_tokens=len(row.tokens),
            stop_reason="stop" if stopped else "max_tokens",
            time=time.monotonic() - row.started,
        )

    def _forward(
        self,
        input_ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor | None,
        cache: RowCache,
        adapters: list[str | None],
        logits_to_keep: int = 0,
    ) -> torch.Tensor:
        kwargs: dict[str, Any] = {"use_cache": True}
        if positions is not None:
            kwargs["position_ids"] = positions
        if logits_to_keep and self.keep_logits:
            kwargs["logits_to_keep"] = logits_to_keep
        with self.base.route(adapters if self.mixed else None):
            output = self.base.decoder(
                input_ids=input_ids, attention_mask=mask, **{self.cache_name: cache}, **kwargs
            )
        return output.logits


def _pad_mask(mask: torch.Tensor, length: int) -> torch.Tensor:
    missing = length - mask.shape[1]
    return mask if missing <= 0 else torch.cat([mask.new_zeros(mask.shape[0], missing), mask], dim=1)


def _zero_padding(cache: RowCache, mask: torch.Tensor) -> None:
    """Zero the cached states of padding positions (a fully masked query may have left NaNs)."""
    keep = mask.bool()[:, None, :, None]
    for layer in cache.buffer_layers:
        layer.set(
            torch.where(keep, layer.keys, torch.zeros((), dtype=layer.keys.dtype)),
            torch.where(keep, layer.values, torch.zeros((), dtype=layer.values.dtype)),
        )
