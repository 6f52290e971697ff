"""Lanes: batches that run concurrently on several worker threads of one base."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from pathlib import Path

import pytest
import torch
from inspect_ai.model import ChatMessageUser, GenerateConfig, ModelOutput
from tiny import PROMPTS

from inspect_misalign._errors import MisalignError
from inspect_misalign.models import _loading
from inspect_misalign.models._batcher import Batcher, Request
from inspect_misalign.models._provider import MisalignAPI
from inspect_misalign.models._threads import lane_threads, requested_lanes, resolve_lanes

pytestmark = pytest.mark.usefixtures("misalign_home")


def test_lanes_run_capped_batches_at_the_same_time() -> None:
    both = threading.Barrier(2, timeout=5)  # breaks unless two batches run at once
    setups: list[int] = []

    def run(requests: list[Request[str]]) -> list[str]:
        both.wait()
        return [f"out:{r.payload}" for r in requests]

    batcher: Batcher[str] = Batcher(run, lanes=2, lane_setup=lambda: setups.append(threading.get_ident()))
    futures = [batcher.submit("k", f"p{i}", batch_size=4) for i in range(8)]
    assert [f.result(10) for f in futures] == [f"out:p{i}" for i in range(8)]
    assert batcher.batch_sizes == [2, 2, 2, 2]  # ceil(4 / 2) per lane
    assert len(set(setups)) == 2


def test_lanes_take_whole_batches_of_different_groups_when_groups_overlap() -> None:
    both = threading.Barrier(2, timeout=5)  # breaks unless two batches run at once
    seen: list[set[str]] = []

    def run(requests: list[Request[str]]) -> list[str]:
        seen.append({str(r.group) for r in requests})
        both.wait()
        return [str(r.payload) for r in requests]

    batcher: Batcher[str] = Batcher(run, lanes=2, overlap=lambda: True)
    with batcher._cond:  # all 8 are queued before a lane looks (else it takes a share of fewer)
        futures = [batcher.submit("k", f"{g}{i}", batch_size=4, group=g) for g in "ab" for i in range(4)]
    assert [f.result(10) for f in futures] == [f"{g}{i}" for g in "ab" for i in range(4)]
    assert batcher.batch_sizes == [4, 4]  # not ceil(4 / 2): 8 queued, an equal share each
    assert sorted(map(sorted, seen)) == [["a"], ["b"]]


def test_a_free_lane_joins_the_group_already_running() -> None:
    gate = threading.Event()
    started: list[list[str]] = []

    def run(requests: list[Request[str]]) -> list[str]:
        started.append([r.payload for r in requests])
        gate.wait(5)
        return [r.payload for r in requests]

    batcher: Batcher[str] = Batcher(run, lanes=2)
    first = batcher.submit("k", "first", batch_size=4, group="a")  # one lane runs it, held
    time.sleep(0.2)
    rest = [batcher.submit("k", p, 4, group=p[0]) for p in ("b1", "b2", "a1", "a2")]
    time.sleep(0.2)
    gate.set()
    for future in [first, *rest]:
        future.result(5)
    assert started[:2] == [["first"], ["a1", "a2"]]  # not the older full batch of b
    assert started[2] == ["b1", "b2"]


def test_one_state_is_shared_and_other_states_wait(
    tiny_model_dir: Path, tiny_adapter_dirs: list[Path]
) -> None:
    _loading.unload_all()
    base = _loading.get_base(tiny_model_dir)
    first, second = (base.adapter_name(d) for d in tiny_adapter_dirs)
    release = threading.Event()
    entered: dict[str, float] = {}
    left: dict[str, float] = {}

    def hold(name: str, adapter: str | None, **how: bool) -> threading.Thread:
        def work() -> None:
            with base.activate(adapter, **how):
                entered[name] = time.monotonic()
                release.wait(5)
            left[name] = time.monotonic()

        thread = threading.Thread(target=work)
        thread.start()
        return thread

    threads = [hold("a", first), hold("a again", first)]
    time.sleep(0.2)
    assert set(entered) == {"a", "a again"}  # the same merged adapter: both run
    threads += [hold("b", second), hold("mixed", None, mixed=True), hold("seeded a", first, alone=True)]
    time.sleep(0.2)
    assert set(entered) == {"a", "a again"}  # another state waits for them
    release.set()
    for thread in threads:
        thread.join(10)
    assert set(entered) == {"a", "a again", "b", "mixed", "seeded a"}
    holders = ["b", "mixed", "seeded a"]
    assert all(entered[name] >= max(left["a"], left["a again"]) - 0.01 for name in holders)
    spans = sorted((entered[name], left[name]) for name in holders)
    assert all(later[0] >= earlier[1] - 0.01 for earlier, later in zip(spans, spans[1:], strict=False))
    _loading.unload_all()


def test_routed_rows_are_per_thread(tiny_model_dir: Path, tiny_adapter_dirs: list[Path]) -> None:
    """Two lanes in the mixed state at once, each routing its rows to another adapter, get the
    same logits as each adapter merged on its own."""
    _loading.unload_all()
    base = _loading.get_base(tiny_model_dir)
    names = [base.adapter_name(d) for d in tiny_adapter_dirs]
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]] * 2)
    with torch.no_grad():
        reference = {}
        for name in [*names, None]:
            with base.activate(name):
                reference[name] = base.decoder(input_ids=ids).logits
        assert (reference[names[0]] - reference[names[1]]).abs().max() > 1e-2
        both = threading.Barrier(2, timeout=5)
        got: dict[str, torch.Tensor] = {}

        def lane(name: str) -> None:
            with torch.no_grad(), base.activate(None, mixed=True), base.route([name, None]):
                both.wait()  # both hold the mixed state at once
                for _ in range(20):
                    got[name] = base.decoder(input_ids=ids).logits

        threads = [threading.Thread(target=lane, args=(name,)) for name in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    for name in names:
        torch.testing.assert_close(got[name][0], reference[name][0], rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(got[name][1], reference[None][1], rtol=1e-3, atol=1e-4)
    assert getattr(base._routes, "names", None) is None  # nothing left routed on this thread
    _loading.unload_all()


def test_lanes_give_each_adapter_and_the_base_their_own_outputs(
    tiny_model_dir: Path, tiny_adapter_dirs: list[Path]
) -> None:
    def outputs(lanes: int) -> list[list[str]]:
        _loading.unload_all()
        models = [*tiny_adapter_dirs, None]
        apis = [
            MisalignAPI(str(tiny_model_dir), adapter=str(d) if d else None, lanes=lanes, batch_size=4)
            for d in models
        ]

        async def run() -> list[ModelOutput]:
            cfg = GenerateConfig(max_tokens=8)
            message = [[ChatMessageUser(content=p)] for p in PROMPTS]
            calls = [api.generate(m, [], "none", cfg) for api in apis for m in message]
            return await asyncio.gather(*calls)

        done = asyncio.run(run())
        base = apis[0]._ensure_loaded().result()[0]
        assert base.batcher.lanes == lanes
        assert base.routing([None]) == (lanes > 1)  # two plain LoRA adapters: lanes route rows
        texts = [o.completion for o in done]
        return [texts[i * len(PROMPTS) : (i + 1) * len(PROMPTS)] for i in range(len(models))]

    one, two = outputs(1), outputs(2)
    assert two == one
    assert one[0] != one[1] and one[0] != one[2]
    _loading.unload_all()


def test_lane_threads_change_only_the_calling_thread() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen: dict[str, int] = {}
    try:

        def lane() -> None:
            lane_threads(1)
            seen["lane"] = torch.get_num_threads()

        thread = threading.Thread(target=lane)
        thread.start()
        thread.join()
        later = threading.Thread(target=lambda: seen.__setitem__("later", torch.get_num_threads()))
        later.start()
        later.join()
        assert seen == {"lane": 1, "later": 2}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_lane_counts() -> None:
    assert requested_lanes("auto") is None and requested_lanes(None) is None
    assert requested_lanes("3") == 3
    for bad in ("0", "two", -1, True):
        with pytest.raises(MisalignError, match="fix -M lanes="):
            requested_lanes(bad)
    with pytest.raises(MisalignError, match="lanes"):
        MisalignAPI("default", lanes="many")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert resolve_lanes("auto", "cpu") == (2, 1)
        assert resolve_lanes("auto", "cuda:0") == (1, 2)
        assert resolve_lanes(1, "cpu") == (1, 2)
    finally:
        torch.set_num_threads(before)


def test_one_load_brings_the_adapters_of_the_other_models_of_its_base(
    tiny_model_dir: Path, tiny_adapter_dirs: list[Path], tmp_path: Path
) -> None:
    """An eval over several adapters: the first load also loads the adapters of the other
    models of that base, so the first batches see (and route) them all; a broken one is left to
    its own model."""
    from inspect_misalign.models import _provider
    from inspect_misalign.models._engine import load_engine
    from inspect_misalign.models._resolve import resolve_checkpoint

    _loading.unload_all()
    first, second = (resolve_checkpoint(str(tiny_model_dir), adapter=str(d)) for d in tiny_adapter_dirs)
    gone = tmp_path / "gone"
    shutil.copytree(tiny_adapter_dirs[0], gone)
    broken = resolve_checkpoint(str(tiny_model_dir), adapter=str(gone))
    shutil.rmtree(gone)
    loads = _loading.ADAPTER_LOADS
    base, name = load_engine(first, lanes=2, also=lambda: [broken, second, first])
    assert set(base.adapters) == {str(d.resolve()) for d in tiny_adapter_dirs}
    assert _loading.ADAPTER_LOADS == loads + 2 and name == base.adapters[str(tiny_adapter_dirs[0].resolve())]
    assert base.routing([None, *base.adapters.values()])
    _loading.unload_all()

    apis = [MisalignAPI(str(tiny_model_dir), adapter=str(d)) for d in tiny_adapter_dirs]
    for api in apis:
        api._ensure_loaded().result(60)
    assert _provider._announced == []  # each model's announcement ends with its load
    _loading.unload_all()
