"""One batched ``generate`` call: left-padded prompts in, per-sample results out.

Per sample it reports the unpadded prompt length, the number of tokens generated (up to and
including the token that stopped it), why it stopped (``stop``: end-of-sequence token or stop
sequence; ``max_tokens``: length limit), and on request log probabilities (of the model's raw
next-token distribution) and the prompt's hidden states at one layer.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache, StoppingCriteria, StoppingCriteriaList

from inspect_misalign._errors import MisalignError
from inspect_misalign.models._loading import LoadedBase, inference_context


@dataclass(frozen=True)
class GenParams:
    """Generation settings; requests share a batch only when these are equal.

    ``adapter`` is None for the base, and also for requests whose LoRA adapter can share a
    mixed batch with other adapters (the adapter then travels with each prompt).
    """

    adapter: str | None
    max_new_tokens: int
    do_sample: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop_seqs: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0
    hidden_states: bool = False
    hidden_layer: int = -1
    add_special_tokens: bool = False
    merge: bool = True
    share_prefix: bool = True
    continuous: bool = False


@dataclass
class GenResult:
    """What one sample of a batch produced."""

    text: str
    input_tokens: int
    output_tokens: int
    stop_reason: str  # "stop" | "max_tokens"
    time: float
    logprobs: list[dict[str, Any]] | None = None
    hidden_states: dict[str, Any] | None = None


MIN_SHARED_PREFIX = 16
"""Prompts of a batch that start with at least this many equal tokens share one prefill of them."""


def _shared_prefix_length(rows: list[list[int]]) -> int:
    """Tokens all rows start with, leaving at least one token of each row after them."""
    limit = min(len(row) for row in rows) - 1
    first = rows[0]
    length = 0
    while length < limit and all(row[length] == first[length] for row in rows):
        length += 1
    return length


def _pad_left(
    rows: list[list[int]], shared: int, pad_id: int, device: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Input ids and attention mask: ``[shared prefix][left padding][rest of row]`` per row.

    Without a shared prefix this is plain left padding. With one, the padding sits after the
    prefix; positions come from the attention mask, so every token keeps its true position.
    """
    width = max(len(row) for row in rows) - shared
    ids, mask = [], []
    for row in rows:
        rest = row[shared:]
        pad = width - len(rest)
        ids.append(row[:shared] + [pad_id] * pad + rest)
        mask.append([1] * shared + [0] * pad + [1] * len(rest))
    return (
        torch.tensor(ids, dtype=torch.long, device=device),
        torch.tensor(mask, dtype=torch.long, device=device),
    )


PREFIX_CACHE_ENTRIES = 8
"""Prefix KV caches kept per loaded base (the system prompts and chat headers seen most recently)."""


def prefix_states(
    base: LoadedBase, prefix: list[int], adapters: list[str | None], mixed: bool, merge: bool
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer (keys, values) of ``prefix``, one row per adapter in ``adapters`` (all distinct).

    Computed once and kept on ``base`` (the last :data:`PREFIX_CACHE_ENTRIES`), keyed by the
    prefix, the adapters and how they run (merged, unmerged or mixed), as each gives other floats.
    The caller has activated the adapters (``base.activate``).
    """
    key = (tuple(prefix), tuple(adapters), mixed, merge)
    with base.prefix_store() as store:
        if key in store:
            store[key] = store.pop(key)  # most recently used last
            return store[key]
    ids = torch.tensor([prefix] * len(adapters), dtype=torch.long, device=base.model.device)
    kwargs: dict[str, Any] = {"use_cache": True}
    if takes_logits_to_keep(base):
        kwargs["logits_to_keep"] = 1
    with base.route(adapters if mixed else None):
        cache = base.decoder(input_ids=ids, past_key_values=DynamicCache(), **kwargs).past_key_values
    states = [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]
    with base.prefix_store() as store:  # another lane may have stored the same prefix meanwhile
        store[key] = states
        while len(store) > PREFIX_CACHE_ENTRIES:
            store.pop(next(iter(store)))
    return states


def takes_logits_to_keep(base: LoadedBase) -> bool:
    """True if the model's ``forward`` can compute logits for the last positions only."""
    import inspect as pyinspect

    return "logits_to_keep" in pyinspect.signature(base.model.forward).parameters


def shared_prefix(base: LoadedBase, token_rows: list[list[int]]) -> list[int]:
    """The prefix whose KV cache the rows share: the longest kept one (:func:`known_prefix`),
    else, for two or more rows, their common start if it has :data:`MIN_SHARED_PREFIX` tokens."""
    known = known_prefix(base, token_rows)
    if known or len(token_rows) < 2:
        return known
    shared = _shared_prefix_length(token_rows)
    return token_rows[0][:shared] if shared >= MIN_SHARED_PREFIX else []


def known_prefix(base: LoadedBase, token_rows: list[list[int]]) -> list[int]:
    """The longest kept prefix (see :func:`prefix_states`) that every row starts with and goes
    past, else []."""
    shortest = min(len(row) for row in token_rows)
    best: tuple[int, ...] = ()
    with base.prefix_store() as store:
        kept = list(store)
    for tokens, *_ in kept:
        if len(best) < len(tokens) < shortest and all(
            tuple(row[: len(tokens)]) == tokens for row in token_rows
        ):
            best = tokens
    return list(best)


def _prefix_cache(
    base: LoadedBase, prefix: list[int], adapters: list[str | None], mixed: bool, merge: bool
) -> Any:
    """A KV cache holding ``prefix`` for every row (computed once per adapter, kept on ``base``)."""
    unique = list(dict.fromkeys(adapters)) if mixed else [adapters[0]]
    states = prefix_states(base, prefix, unique, mixed, merge)
    rows = torch.tensor([unique.index(name) if mixed else 0 for name in adapters], device=base.model.device)
    cache = DynamicCache()
    for index, (keys, values) in enumerate(states):
        cache.update(keys[rows], values[rows], index)
    return cache


class _FinishRecorder(StoppingCriteria):
    """Stops rows at EOS or a stop string and records how many tokens each row generated."""

    def __init__(self, prompt_len: int, batch: int, eos_ids: set[int], stop: Any) -> None:
        self.prompt_len = prompt_len
        self.eos = torch.tensor(sorted(eos_ids)) if eos_ids else None
        self.stop = stop
        self.finished: list[int | None] = [None] * batch
        self.by_stop_string = [False] * batch

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if self.eos is not None:
            done |= torch.isin(input_ids[:, -1], self.eos.to(input_ids.device))
        stop_hit = None
        if self.stop is not None:
            stop_hit = self.stop(input_ids, scores)
            done |= stop_hit
        length = input_ids.shape[1] - self.prompt_len
        for row in torch.nonzero(done).flatten().tolist():
            if self.finished[row] is None:
                self.finished[row] = length
                self.by_stop_string[row] = bool(stop_hit is not None and stop_hit[row])
        return done


def run_batch(
    base: LoadedBase,
    params: GenParams,
    prompts: list[str],
    adapters: list[str | None] | None = None,
) -> list[GenResult]:
    """Generate completions for ``prompts`` with one batched ``generate`` call.

    ``adapters`` (one per prompt, None for the base) overrides ``params.adapter``; when they
    differ (or :meth:`LoadedBase.routing` says so), each row is routed to its own adapter
    (:meth:`LoadedBase.route`; plain LoRA adapters only).
    """
    start = time.monotonic()
    rows = adapters if adapters is not None else [params.adapter] * len(prompts)
    mixed = len(set(rows)) > 1 or base.routing(rows)
    tokenizer = base.tokenizer
    token_rows: list[list[int]] = tokenizer(
        prompts, add_special_tokens=params.add_special_tokens, padding=False
    )["input_ids"]
    shared = len(shared_prefix(base, token_rows)) if params.share_prefix and not params.hidden_states else 0
    device = base.model.device
    input_ids, attention_mask = _pad_left(token_rows, shared, tokenizer.pad_token_id, device)
    prompt_len = input_ids.shape[1]
    input_lengths = [len(row) for row in token_rows]

    config = _generation_config(base, params)
    context = getattr(base.model.config, "max_position_embeddings", None)
    if isinstance(context, int) and context > prompt_len:
        # never generate past the model's context window
        config.max_new_tokens = min(config.max_new_tokens, context - prompt_len)
    config.return_dict_in_generate = True
    config.output_logits = params.logprobs
    config.output_hidden_states = params.hidden_states
    eos_ids = _eos_ids(config.eos_token_id, tokenizer.eos_token_id)
    stop = None
    if params.stop_seqs:
        from transformers.generation import StopStringCriteria

        stop = StopStringCriteria(tokenizer, list(params.stop_seqs))
    recorder = _FinishRecorder(prompt_len, len(prompts), eos_ids, stop)

    extra: dict[str, Any] = {}
    seeded = params.seed is not None
    with (
        # seeded sampling draws from torch's one global generator: no other lane may draw meanwhile
        base.activate(None if mixed else rows[0], mixed=mixed, merge=params.merge, alone=seeded),
        inference_context(),
    ):
        if seeded:
            torch.manual_seed(params.seed)
        if shared:
            extra["past_key_values"] = _prefix_cache(base, token_rows[0][:shared], rows, mixed, params.merge)
        with base.route(rows if mixed else None):
            output = base.decoder.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                generation_config=config,
                stopping_criteria=StoppingCriteriaList([recorder]),
                **extra,
            )
    generated = output.sequences[:, prompt_len:].tolist()

    logprobs = _logprobs(output.logits, generated, tokenizer, params) if params.logprobs else None
    hidden = _hidden(output.hidden_states, attention_mask, params) if params.hidden_states else None
    elapsed = time.monotonic() - start

    results = []
    for row, tokens in enumerate(generated):
        finished = recorder.finished[row]
        count = finished if finished is not None else len(tokens)
        text = tokenizer.decode(tokens[:count], skip_special_tokens=True, clean_up_tokenization_spaces=False)
        if recorder.by_stop_string[row]:
            text = _cut_at_stop(text, params.stop_seqs)
        results.append(
            GenResult(
                text=text,
                input_tokens=int(input_lengths[row]),
                output_tokens=count,
                stop_reason="stop" if finished is not None else "max_tokens",
                time=elapsed,
                logprobs=logprobs[row][:count] if logprobs is not None else None,
                hidden_states=hidden[row] if hidden is not None else None,
            )
        )
    return results


def _generation_config(base: LoadedBase, params: GenParams) -> Any:
    config = copy.deepcopy(base.model.generation_config)
    config.max_new_tokens = params.max_new_tokens
    config.max_length = None
    config.do_sample = params.do_sample
    config.num_return_sequences = 1
    config.num_beams = 1
    if params.do_sample:
        config.temperature = params.temperature if params.temperature is not None else 1.0
        config.top_p = params.top_p if params.top_p is not None else 1.0
        config.top_k = params.top_k if params.top_k is not None else 0
    else:
        config.temperature = None
        config.top_p = None
        config.top_k = None
    tokenizer = base.tokenizer
    if config.eos_token_id is None:
        config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    return config


def _eos_ids(*values: Any) -> set[int]:
    ids: set[int] = set()
    for value in values:
        if value is None:
            continue
        if isinstance(value, int):
            ids.add(value)
        else:
            ids.update(int(v) for v in value)
    return ids


def _cut_at_stop(text: str, stop_seqs: tuple[str, ...]) -> str:
    cuts = [text.find(seq) for seq in stop_seqs if seq and seq in text]
    return text[: min(cuts)] if cuts else text


def _logprobs(
    logits: tuple[torch.Tensor, ...] | None,
    generated: list[list[int]],
    tokenizer: Any,
    params: GenParams,
) -> list[list[dict[str, Any]]]:
    """Per row, per generated token: its logprob and the top alternatives (plain dicts)."""
    rows: list[list[dict[str, Any]]] = [[] for _ in generated]
    if not logits:
        return rows
    k = max(1, params.top_logprobs)
    for step, step_logits in enumerate(logits):
        logp = torch.log_softmax(step_logits.float(), dim=-1)
        chosen = torch.tensor([tokens[step] for tokens in generated], device=logp.device)
        chosen_lp = logp.gather(1, chosen[:, None]).squeeze(1).tolist()
        top_values, top_ids = logp.topk(k, dim=-1)
        top_values_l, top_ids_l = top_values.tolist(), top_ids.tolist()
        for row in range(len(generated)):
            token = _token_text(tokenizer, generated[row][step])
            entry: dict[str, Any] = {"token": token, "logprob": chosen_lp[row]}
            if params.top_logprobs:
                entry["top_logprobs"] = [
                    {"token": _token_text(tokenizer, tid), "logprob": value}
                    for tid, value in zip(top_ids_l[row], top_values_l[row], strict=True)
                ]
            rows[row].append(entry)
    return rows


def _token_text(tokenizer: Any, token_id: int) -> str:
    return tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _hidden(hidden_states: Any, attention_mask: torch.Tensor, params: GenParams) -> list[dict[str, Any]]:
    """Mean and last-token prompt hidden states at ``params.hidden_layer``, per row."""
    prompt_states = hidden_states[0]  # first step: the whole prompt; one entry per layer + embeds
    layer = params.hidden_layer
    index = layer if layer >= 0 else len(prompt_states) + layer
    if not 0 <= index < len(prompt_states):
        raise MisalignError(
            f"hidden_layer={layer} is out of range: the model has {len(prompt_states)} hidden "
            "states (0 = embeddings); fix -M hidden_layer="
        )
    states = prompt_states[index].float()
    mask = attention_mask.to(states.device, states.dtype)[:, :, None]
    mean = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    last = states[:, -1, :]  # left padding: the last position is every row's last prompt token
    return [
        {"layer": index, "prompt_mean": mean[row].tolist(), "prompt_last": last[row].tolist()}
        for row in range(states.shape[0])
    ]
