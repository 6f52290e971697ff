"""Teacher-forced continuation scoring and hidden states at several layers (``extra_body``), checked
against independent transformers forward passes on a freshly loaded model (and adapter)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from inspect_ai.model import ChatMessageUser, GenerateConfig, ModelOutput
from tiny import PROMPTS

from inspect_misalign._errors import MisalignError
from inspect_misalign.models._provider import MisalignAPI
from inspect_misalign.models._score import shared_prefix_rows

pytestmark = pytest.mark.usefixtures("misalign_home")

# the last two begin others (a prefix, a repeat): read from those rows, and still equal to their own pass
CONTINUATIONS = [
    "paris",
    "the quick brown fox jumps over the lazy dog",
    "",
    "one two",
    "the quick brown",
    "paris",
]
ATOL = 2e-4  # float32 rounding: batched, left-padded rows vs one unpadded row


def _ask(api: MisalignAPI, prompts: list[str], extra: dict[str, Any], **config: Any) -> list[ModelOutput]:
    async def run() -> list[ModelOutput]:
        cfg = GenerateConfig(max_tokens=6, extra_body=extra, **config)
        return await asyncio.gather(
            *(api.generate([ChatMessageUser(content=p)], [], "none", cfg) for p in prompts)
        )

    return asyncio.run(run())


class Reference:
    """A freshly loaded transformers model (with its adapter applied by peft), one row at a time."""

    def __init__(self, model_dir: Path, adapter: Path | None = None) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model: Any = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        if adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter)
        self.model = model.eval()

    def prompt_ids(self, prompt: str) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def token_logprobs(self, prompt: str, continuation: str, eos: bool = False) -> list[float]:
        """log P(each continuation token | prompt, the tokens before it), by hand."""
        prompt_ids = self.prompt_ids(prompt)
        tail = self.tokenizer(continuation, add_special_tokens=False)["input_ids"]
        if eos:
            tail = tail + [self.tokenizer.eos_token_id]
        ids = torch.tensor([prompt_ids + tail])
        with torch.inference_mode():
            logits = self.model(input_ids=ids).logits[0].double()
        logp = torch.log_softmax(logits, dim=-1)
        return [float(logp[len(prompt_ids) + i - 1, token]) for i, token in enumerate(tail)]

    def hidden(self, prompt: str) -> tuple[torch.Tensor, ...]:
        ids = torch.tensor([self.prompt_ids(prompt)])
        with torch.inference_mode():
            return self.model(input_ids=ids, output_hidden_states=True).hidden_states


def _check_continuations(output: ModelOutput, reference: Reference, prompt: str, eos: bool = False) -> None:
    assert output.completion == "" and output.usage is not None and output.usage.output_tokens == 0
    entries = (output.metadata or {})["continuations"]
    assert [entry["text"] for entry in entries] == CONTINUATIONS
    for entry in entries:
        expected = reference.token_logprobs(prompt, entry["text"], eos)
        assert entry["tokens"] == len(expected) == len(entry["token_logprobs"])
        assert entry["token_logprobs"] == pytest.approx(expected, abs=ATOL)
        assert entry["logprob"] == pytest.approx(sum(expected), abs=ATOL * max(1, len(expected)))
        assert entry["logprob"] == pytest.approx(sum(entry["token_logprobs"]))
    assert entries[2]["tokens"] == (1 if eos else 0)  # the empty continuation


@pytest.mark.parametrize("eos", [False, True], ids=["plain", "eos"])
def test_continuations_equal_an_independent_forward_pass(
    tiny_model_dir: Path, tiny_adapter_dirs: list[Path], eos: bool
) -> None:
    extra = {"continuations": CONTINUATIONS, "continuation_eos": eos}
    for adapter in (None, tiny_adapter_dirs[0]):
        api = MisalignAPI(str(tiny_model_dir), adapter=str(adapter) if adapter else None, batch_size=16)
        base = api._ensure_loaded().result()[0]
        before = len(base.batcher.batch_sizes)
        outputs = _ask(api, PROMPTS, extra)
        assert max(base.batcher.batch_sizes[before:]) > 1  # prompts of different lengths, one batch
        reference = Reference(tiny_model_dir, adapter)
        for prompt, output in zip(PROMPTS, outputs, strict=True):
            _check_continuations(output, reference, prompt, eos)
    # the adapter changes the scores (the test would notice a batch run on the wrong weights)
    plain = _ask(MisalignAPI(str(tiny_model_dir)), PROMPTS[:1], extra)[0]
    adapted = _ask(MisalignAPI(str(tiny_model_dir), adapter=str(tiny_adapter_dirs[0])), PROMPTS[:1], extra)[0]
    assert (plain.metadata or {})["continuations"][1]["logprob"] != pytest.approx(
        (adapted.metadata or {})["continuations"][1]["logprob"], abs=1e-2
    )


@pytest.mark.parametrize("lanes", [1, 2])
def test_mixed_adapters_share_a_scoring_batch(
    tiny_model_dir: Path, tiny_adapter_dirs: list[Path], tmp_path: Path, lanes: int
) -> None:
    """Requests for two adapters and the base at once: rows routed to their own adapters."""
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / f"lanes{lanes}")  # a base with its own lanes
    adapters: list[Path | None] = [*tiny_adapter_dirs, None]
    apis = [MisalignAPI(str(model_dir), adapter=str(a) if a else None, lanes=lanes) for a in adapters]
    for api in apis:
        api._ensure_loaded().result()

    async def run() -> list[ModelOutput]:
        cfg = GenerateConfig(extra_body={"continuations": CONTINUATIONS})
        chats = [[ChatMessageUser(content=p)] for p in PROMPTS[:3]]
        return await asyncio.gather(*(api.generate(chat, [], "none", cfg) for api in apis for chat in chats))

    outputs = asyncio.run(run())
    base = apis[0]._ensure_loaded().result()[0]
    assert max(base.batcher.batch_sizes) > 3  # more than one adapter's requests in a batch
    for index, adapter in enumerate(adapters):
        reference = Reference(tiny_model_dir, adapter)
        for offset, prompt in enumerate(PROMPTS[:3]):
            _check_continuations(outputs[index * 3 + offset], reference, prompt)


def _check_hidden(output: ModelOutput, reference: Reference, prompt: str, layers: list[int]) -> None:
    states = reference.hidden(prompt)
    by_layer = (output.metadata or {})["hidden_states_by_layer"]
    assert sorted(by_layer, key=int) == [str(layer) for layer in layers]
    for layer in layers:
        expected = states[layer][0]
        got = by_layer[str(layer)]
        assert got["prompt_mean"] == pytest.approx(expected.mean(dim=0).tolist(), abs=ATOL)
        assert got["prompt_last"] == pytest.approx(expected[-1].tolist(), abs=ATOL)


def test_hidden_states_at_several_layers(tiny_model_dir: Path, tiny_adapter_dirs: list[Path]) -> None:
    reference = Reference(tiny_model_dir, tiny_adapter_dirs[1])
    api = MisalignAPI(str(tiny_model_dir), adapter=str(tiny_adapter_dirs[1]), batch_size=16)
    layers = 3  # embeddings + 2 blocks
    # forward passes only: with continuations, and with an empty list (nothing generated)
    for extra in ({"hidden_layers": [0, -1], "continuations": CONTINUATIONS}, {"hidden_layers": [2, 0, -1]}):
        outputs = _ask(api, PROMPTS, {**extra, "continuations": extra.get("continuations", [])})
        for prompt, output in zip(PROMPTS, outputs, strict=True):
            assert output.completion == "" and output.usage is not None and output.usage.output_tokens == 0
            _check_hidden(output, reference, prompt, [0, 2])
    # with generation: the completion is the greedy one, and the prompt's states come with it
    greedy = _ask(api, PROMPTS, {})
    outputs = _ask(api, PROMPTS, {"hidden_layers": "all"})
    for prompt, output, plain in zip(PROMPTS, outputs, greedy, strict=True):
        assert output.completion == plain.completion and output.usage and output.usage.output_tokens > 0
        _check_hidden(output, reference, prompt, list(range(layers)))
        assert "continuations" not in (output.metadata or {})
    # the -M hidden_states form keeps working, next to the new one
    legacy = MisalignAPI(str(tiny_model_dir), adapter=str(tiny_adapter_dirs[1]), hidden_states=True)
    [both] = _ask(legacy, PROMPTS[:1], {"hidden_layers": [1]})
    metadata = both.metadata or {}
    assert metadata["hidden_states"]["layer"] == 2
    assert metadata["hidden_states"]["prompt_last"] == pytest.approx(
        reference.hidden(PROMPTS[0])[2][0][-1].tolist(), abs=ATOL
    )
    _check_hidden(both, reference, PROMPTS[0], [1])


def test_a_continuation_that_begins_another_is_read_from_its_row() -> None:
    # [marker, attack, benign, repeat of the marker, empty]: the marker, its repeat and the empty one
    # are read from the attack's row; nothing else shares a row
    tails = [[5, 6], [5, 6, 7, 5, 6], [5, 8], [5, 6], []]
    assert shared_prefix_rows(tails) == [1, 1, 2, 1, 1]
    assert shared_prefix_rows([[1], [1], [2]]) == [0, 0, 2]  # equal ones: the first
    assert shared_prefix_rows([[1, 2], [1, 3]]) == [0, 1]  # a shared start is not a prefix
    assert shared_prefix_rows([[1], [1, 2], [1, 2, 3]]) == [2, 2, 2]  # a chain: the longest


def test_prompt_run_once_equals_whole_rows(tiny_model_dir: Path, tiny_adapter_dirs: list[Path]) -> None:
    """The shared-prompt passes (the default) and whole rows per continuation (what a prompt-learning
    adapter gets) give the same log-probabilities and hidden states, on the base and an adapter."""
    from inspect_misalign.models._generate import Prompt
    from inspect_misalign.models._score import ScoreParams, ScoreRequest, run_score

    api = MisalignAPI(str(tiny_model_dir), adapter=str(tiny_adapter_dirs[0]))
    base, adapter = api._ensure_loaded().result()
    ref = Reference(tiny_model_dir)
    texts = [ref.tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                               add_generation_prompt=True) for p in PROMPTS]
    for name in (None, adapter):
        asks = [Prompt(t, name, ScoreRequest(tuple(CONTINUATIONS), eos, (0, -1))) for t in texts
                for eos in (False, True)]
        whole = run_score(base, ScoreParams(name, share_prompt=False), asks)
        shared = run_score(base, ScoreParams(name), asks)
        for a, b in zip(whole, shared, strict=True):
            assert [c["tokens"] for c in a.continuations] == [c["tokens"] for c in b.continuations]
            for x, y in zip(a.continuations, b.continuations, strict=True):
                assert y["token_logprobs"] == pytest.approx(x["token_logprobs"], abs=ATOL)
            for layer, states in a.hidden_states_by_layer.items():
                other = b.hidden_states_by_layer[layer]
                assert other["prompt_mean"] == pytest.approx(states["prompt_mean"], abs=ATOL)
                assert other["prompt_last"] == pytest.approx(states["prompt_last"], abs=ATOL)


def test_empty_continuations_generate_nothing(tiny_model_dir: Path) -> None:
    from inspect_misalign.models import _generate

    api = MisalignAPI(str(tiny_model_dir))
    calls: list[int] = []
    original = _generate.run_batch

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    import inspect_misalign.models._engine as engine

    engine.run_batch = counting
    try:
        [out] = _ask(api, ["hello"], {"continuations": []})
        assert not calls  # no generate call ran
        [generated] = _ask(api, ["hello"], {})
        assert calls
    finally:
        engine.run_batch = original
    assert out.completion == "" and (out.metadata or {}) == {"continuations": []}
    assert out.usage is not None and out.usage.output_tokens == 0 and out.usage.input_tokens > 0
    assert generated.completion != ""


def test_bad_extra_body_is_a_one_line_error(tiny_model_dir: Path) -> None:
    api = MisalignAPI(str(tiny_model_dir))
    bad = [
        ({"continuations": "paris"}, "list of strings"),
        ({"continuations": ["a", 3]}, "list of strings"),
        ({"continuations": ["a"], "continuation_eos": "yes"}, "true or false"),
        ({"hidden_layers": []}, "non-empty list"),
        ({"hidden_layers": "last"}, "non-empty list"),
        ({"hidden_layers": [3]}, "out of range"),
        ({"hidden_layers": [-4], "continuations": []}, "out of range"),
    ]
    for extra, words in bad:
        with pytest.raises(MisalignError, match=words) as info:
            _ask(api, ["hello"], extra)
        assert "\n" not in str(info.value)
