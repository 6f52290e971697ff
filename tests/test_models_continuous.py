"""Continuous batching on a tiny random model: rows that join and leave mid-run keep their outputs."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import tiny
import torch

from inspect_misalign.models._batcher import Batcher, Request
from inspect_misalign.models._continuous import ContinuousDecoder, streamable
from inspect_misalign.models._generate import GenParams, GenResult, run_batch
from inspect_misalign.models._kvcache import RowCache
from inspect_misalign.models._loading import get_base

PROMPTS = [*tiny.PROMPTS, "adapters change the outputs", "paris"]


def _chat(base: Any, prompt: str, system: str | None = None) -> str:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    return base.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _request(params: GenParams, text: str) -> Request[GenResult]:
    return Request(key=params, payload=(text, None), batch_size=3)


def _decode(base: Any, params: GenParams, texts: list[str], first: int, per_step: int) -> list[GenResult]:
    """Start with ``first`` requests; admit ``per_step`` more at each step while rows are free."""
    requests = [_request(params, text) for text in texts]
    queue = list(requests[first:])
    results: dict[int, GenResult] = {}
    admitted: list[int] = []

    def take(n: int, least: int = 1) -> list[Request[GenResult]]:
        count = min(n, per_step, len(queue))
        if count < least:
            return []
        admitted.append(count)
        return [queue.pop(0) for _ in range(count)]

    def finish(request: Request[GenResult], result: GenResult | BaseException) -> None:
        assert isinstance(result, GenResult)
        results[id(request)] = result

    ContinuousDecoder(base, params, 3, take, finish).run(requests[:first])
    assert not queue and any(admitted)
    return [results[id(r)] for r in requests]


@pytest.mark.parametrize("system", [None, "the quick brown fox jumps over the lazy dog. " * 3])
def test_joining_and_leaving_rows_match_one_by_one(tiny_model_dir: Path, system: str | None) -> None:
    base = get_base(tiny_model_dir)
    params = GenParams(adapter=None, max_new_tokens=9, continuous=True)
    assert streamable(base, params)
    texts = [_chat(base, p, system) for p in PROMPTS]
    streamed = _decode(base, params, texts, first=2, per_step=1)
    singles = [run_batch(base, params, [text])[0] for text in texts]
    assert [r.text for r in streamed] == [r.text for r in singles]
    assert [(r.input_tokens, r.output_tokens, r.stop_reason) for r in streamed] == [
        (r.input_tokens, r.output_tokens, r.stop_reason) for r in singles
    ]
    assert len({r.text for r in streamed}) > 1


def test_eos_rows_leave_at_once(tmp_path: Path) -> None:
    eos_model = tiny.make_model(tmp_path / "eos", zero_head=True)
    base = get_base(eos_model)
    params = GenParams(adapter=None, max_new_tokens=9, continuous=True)
    results = _decode(base, params, [_chat(base, p) for p in PROMPTS[:4]], first=2, per_step=2)
    assert all(r.text == "" and r.output_tokens == 1 and r.stop_reason == "stop" for r in results)


def test_only_plain_greedy_requests_stream(tiny_model_dir: Path) -> None:
    base = get_base(tiny_model_dir)
    plain = GenParams(adapter=None, max_new_tokens=4, continuous=True)
    assert streamable(base, plain)
    for other in (
        GenParams(adapter=None, max_new_tokens=4, continuous=True, do_sample=True),
        GenParams(adapter=None, max_new_tokens=4, continuous=True, logprobs=True),
        GenParams(adapter=None, max_new_tokens=4, continuous=True, hidden_states=True),
        GenParams(adapter=None, max_new_tokens=4, continuous=True, stop_seqs=("x",)),
        GenParams(adapter=None, max_new_tokens=4),  # continuous is opt-in
    ):
        assert not streamable(base, other)


def test_row_cache_appends_in_place_and_rebuilds() -> None:
    def filled(rows: int, length: int, start: float) -> RowCache:
        cache = RowCache(1)
        states = torch.arange(rows * length, dtype=torch.float32).reshape(rows, 1, length, 1) + start
        cache.update(states, states.clone(), 0)
        return cache

    cache = filled(3, 4, 0.0)  # rows [0..3], [4..7], [8..11]
    buffer = cache.layers[0].keys.data_ptr()
    cache.update(torch.full((3, 1, 1, 1), -1.0), torch.full((3, 1, 1, 1), -1.0), 0)
    assert cache.get_seq_length() == 5 and cache.layers[0].keys.data_ptr() == buffer  # no copy
    cache.rebuild([2, 0], trim=1)
    assert cache.layers[0].keys[:, 0, :, 0].tolist() == [[9, 10, 11, -1], [1, 2, 3, -1]]
    cache.rebuild([1, 0], other=filled(1, 6, 100.0))  # longer: the kept rows are left-padded
    keys = cache.layers[0].keys[:, 0, :, 0].tolist()
    assert keys == [[0, 0, 1, 2, 3, -1], [0, 0, 9, 10, 11, -1], [100, 101, 102, 103, 104, 105]]
    cache.rebuild([2], trim=0, other=filled(1, 2, 50.0))  # shorter: the new row is left-padded
    assert cache.layers[0].keys[:, 0, :, 0].tolist() == [[100, 101, 102, 103, 104, 105], [0, 0, 0, 0, 50, 51]]
    assert torch.equal(cache.layers[0].keys, cache.layers[0].values)


def test_batcher_streams_and_admits_waiting_requests() -> None:
    """A stream takes queued requests of its key between steps; other keys wait for the next run."""
    gate = threading.Event()
    taken: list[list[str]] = []
    batches: list[list[str]] = []

    def run_stream(first: list[Request[str]], take: Any, finish: Any) -> None:
        gate.wait(5)
        rows = list(first)
        while rows:
            request = rows.pop(0)
            finish(request, f"out:{request.payload}")
            more = take(1, 1)
            taken.append([r.payload for r in more])
            rows += more

    def run_batch(requests: list[Request[str]]) -> list[str]:
        batches.append([r.payload for r in requests])
        return [f"batch:{r.payload}" for r in requests]

    batcher: Batcher[str] = Batcher(run_batch, run_stream=run_stream, can_stream=lambda key: key == "s")
    futures = [batcher.submit("s", f"p{i}", batch_size=2) for i in range(2)]
    late = [batcher.submit("s", f"q{i}", batch_size=2) for i in range(3)]
    gate.set()
    assert [f.result(5) for f in futures + late] == [f"out:{p}" for p in ("p0", "p1", "q0", "q1", "q2")]
    assert [p for group in taken for p in group] == ["q0", "q1", "q2"]
    assert batcher.submit("b", "x", batch_size=2).result(5) == "batch:x" and batches == [["x"]]


@pytest.mark.parametrize("continuous", [True, False], ids=["continuous", "batched"])
def test_prefix_states_are_kept_across_batches(tiny_model_dir: Path, continuous: bool) -> None:
    """The second batch with the same system prompt reuses the first batch's prefix prefill."""
    base = get_base(tiny_model_dir)
    base.prefix_kv.clear()
    params = GenParams(adapter=None, max_new_tokens=4, continuous=continuous)
    system = "one two three four five six seven eight nine ten " * 2
    first = [_chat(base, p, system) for p in PROMPTS[:3]]
    second = [_chat(base, p, system) for p in PROMPTS[3:6]]
    outputs = []
    for texts in (first, second):
        if continuous:
            outputs += [r.text for r in _decode(base, params, texts, first=2, per_step=1)]
        else:
            outputs += [r.text for r in run_batch(base, params, texts)]
        if texts is first:
            [(key, states)] = base.prefix_kv.items()
    assert list(base.prefix_kv) == [key] and base.prefix_kv[key] is states  # kept, not recomputed
    assert outputs == [
        run_batch(base, replace(params, share_prefix=False), [t])[0].text for t in first + second
    ]
