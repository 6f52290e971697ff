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
from typing import Any, NamedTuple

import torch
from transformers import DynamicCache, StoppingCriteria, StoppingCriteriaList

from inspect_misalign.models._compat import cache_kwarg, output_cache
from inspect_misalign.models._hidden import Layers, by_layer_metadata, pooled_states, resolve_layers
from inspect_misalign.models._loading import LoadedBase, inference_context


class Prompt(NamedTuple):
    """A queued request's payload: the prompt text, its adapter (None: the base) and what else
    the request carries (a scoring request, a sampling seed), if anything."""

    text: str
    adapter: str | None
    extra: Any = None


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
    seeded: bool = False  # sample with one generator per row (seeds travel with the prompts)
    stop_seqs: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0
    hidden_states: bool = False
    hidden_layer: int = -1
    hidden_layers: Layers | None = None
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
    hidden_states_by_layer: dict[str, dict[str, list[float]]] | None = None
    continuations: list[dict[str, Any]] | None = None


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


def pad_id(tokenizer: Any) -> int:
    """The id that fills padded positions: the tokenizer's pad token, else 0 (masked out anyway)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


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
        output = base.decoder(input_ids=ids, **{cache_kwarg(base.model): DynamicCache()}, **kwargs)
    cache = output_cache(output)
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
    seeds: list[int] | None = None,
) -> list[GenResult]:
    """Generate completions for ``prompts`` with one batched ``generate`` call.

    ``adapters`` (one per prompt, None for the base) overrides ``params.adapter``; when they
    differ (or :meth:`LoadedBase.routing` says so), each row is routed to its own adapter
    (:meth:`LoadedBase.route`; plain LoRA adapters only). With ``params.do_sample`` and ``seeds``
    (one per prompt), each row samples from its own generator (:mod:`._sampling`).
    """
    start = time.monotonic()
    rows = adapters if adapters is not None else [params.adapter] * len(prompts)
    mixed = len(set(rows)) > 1 or base.routing(rows)
    tokenizer = base.tokenizer
    token_rows: list[list[int]] = tokenizer(
        prompts, add_special_tokens=params.add_special_tokens, padding=False
    )["input_ids"]
    wants_hidden = params.hidden_states or params.hidden_layers is not None
    shared = len(shared_prefix(base, token_rows)) if params.share_prefix and not wants_hidden else 0
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
    config.output_hidden_states = wants_hidden
    eos_ids = _eos_ids(config.eos_token_id, tokenizer.eos_token_id)
    stop = None
    if params.stop_seqs:
        from transformers.generation import StopStringCriteria

        stop = StopStringCriteria(tokenizer, list(params.stop_seqs))
    recorder = _FinishRecorder(prompt_len, len(prompts), eos_ids, stop)

    extra: dict[str, Any] = {}
    if params.do_sample and params.seeded:
        if seeds is None or len(seeds) != len(prompts):
            raise ValueError("seeded sampling needs one seed per prompt")
        from inspect_misalign.models._sampling import seeded_processors

        config.do_sample = False  # greedy over Gumbel-perturbed scores samples exactly (see _sampling)
        config.temperature = config.top_p = config.top_k = None
        extra["logits_processor"] = seeded_processors(
            seeds, params.temperature, params.top_k, params.top_p, device
        )
    with (
        base.activate(None if mixed else rows[0], mixed=mixed, merge=params.merge),
        inference_context(),
    ):
        if shared:
            prefix = _prefix_cache(base, token_rows[0][:shared], rows, mixed, params.merge)
            extra[cache_kwarg(base.model)] = prefix
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
    hidden = hidden_by_layer = None
    if wants_hidden:
        hidden, hidden_by_layer = _hidden(output.hidden_states, input_lengths, params)
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
                hidden_states_by_layer=hidden_by_layer[row] if hidden_by_layer is not None else None,
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


def _hidden(
    hidden_states: Any, lengths: list[int], params: GenParams
) -> tuple[list[dict[str, Any]] | None, list[dict[str, dict[str, list[float]]]] | None]:
    """Per row, the prompt's pooled hidden states: at ``params.hidden_layer`` in the ``-M
    hidden_states`` form, and at ``params.hidden_layers`` in the ``hidden_states_by_layer`` form."""
    prompt_states = hidden_states[0]  # first step: the whole prompt; one entry per layer + embeds
    count = len(prompt_states)
    single = resolve_layers((params.hidden_layer,), count, "-M hidden_layer=") if params.hidden_states else []
    many = resolve_layers(params.hidden_layers, count) if params.hidden_layers is not None else []
    # left padding (no shared prefix with hidden states): row i's prompt fills its last columns
    width = prompt_states[0].shape[1]
    spans = [(row, width - length, width) for row, length in enumerate(lengths)]
    pooled = pooled_states(prompt_states, spans, sorted({*single, *many}))
    legacy = [{"layer": single[0], **states[single[0]]} for states in pooled] if single else None
    by_layer = None
    if many:
        by_layer = [by_layer_metadata({layer: states[layer] for layer in many}) for states in pooled]
    return legacy, by_layer
