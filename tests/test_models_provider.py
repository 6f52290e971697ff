"""The ``misalign/`` provider on tiny random models: batching, adapters, counts, errors, evals."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.model import ChatMessageUser, GenerateConfig, ModelOutput
from tiny import PROMPTS

from inspect_misalign._errors import MisalignError
from inspect_misalign.models import CheckpointError, UnknownModelError
from inspect_misalign.models._provider import MisalignAPI, _wants_sampling

pytestmark = pytest.mark.usefixtures("misalign_home")


def _generate(api: MisalignAPI, prompts: list[str], **config: Any) -> list[ModelOutput]:
    async def run() -> list[ModelOutput]:
        cfg = GenerateConfig(max_tokens=config.pop("max_tokens", 10), **config)
        return await asyncio.gather(
            *(api.generate([ChatMessageUser(content=p)], [], "none", cfg) for p in prompts)
        )

    return asyncio.run(run())


def _reference(model_dir: Path, prompt: str, adapter: Path | None, max_tokens: int = 10) -> str:
    """Greedy completion from a freshly loaded model (and adapter), one prompt, no batching."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model: Any = AutoModelForCausalLM.from_pretrained(model_dir)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=max_tokens, do_sample=False)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


def test_batched_equals_one_by_one(tiny_model_dir: Path) -> None:
    api = MisalignAPI(str(tiny_model_dir), batch_size=8)
    batched = _generate(api, PROMPTS)
    base = api._ensure_loaded().result()[0]
    assert max(base.batcher.batch_sizes) > 1
    singles = [_generate(api, [p])[0] for p in PROMPTS]
    assert [o.completion for o in batched] == [o.completion for o in singles]
    assert [o.usage for o in batched] == [o.usage for o in singles]
    assert len({o.completion for o in batched}) > 1


def test_token_counts_are_unpadded(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    outputs = _generate(MisalignAPI(str(tiny_model_dir)), PROMPTS, max_tokens=6)
    for prompt, output in zip(PROMPTS, outputs, strict=True):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        expected = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        assert output.usage is not None
        assert output.usage.input_tokens == expected
        assert output.usage.total_tokens == expected + output.usage.output_tokens
        if output.stop_reason == "max_tokens":
            assert output.usage.output_tokens == 6
        else:
            assert output.stop_reason == "stop" and output.usage.output_tokens <= 6
    assert len({o.usage.input_tokens for o in outputs if o.usage}) == len(PROMPTS)


def test_stop_reasons(tiny_model_dir: Path, tmp_path: Path) -> None:
    eos_model = __import__("tiny").make_model(tmp_path / "eos", zero_head=True)
    [out] = _generate(MisalignAPI(str(eos_model)), ["hello"])
    assert out.completion == "" and out.stop_reason == "stop"
    assert out.usage is not None and out.usage.output_tokens == 1

    api = MisalignAPI(str(tiny_model_dir))
    full = _generate(api, PROMPTS, max_tokens=12)
    for prompt, output in zip(PROMPTS, full, strict=True):
        assert output.stop_reason == "max_tokens"
        words = [w for w in output.completion.split() if w.isascii() and w.isalnum()]
        if not words:
            continue
        stop = words[-1]
        [cut] = _generate(api, [prompt], max_tokens=12, stop_seqs=[stop])
        assert cut.stop_reason == "stop"
        assert cut.completion == output.completion[: output.completion.find(stop)]
        assert cut.usage is not None and output.usage is not None
        assert cut.usage.output_tokens <= output.usage.output_tokens
        break
    else:
        pytest.skip("no ascii word in the tiny model's outputs")


def test_logprobs_and_hidden_states(tiny_model_dir: Path) -> None:
    api = MisalignAPI(str(tiny_model_dir), hidden_states=True, hidden_layer=1)
    [out] = _generate(api, ["hello"], max_tokens=5, logprobs=True, top_logprobs=3)
    logprobs = out.choices[0].logprobs
    assert logprobs is not None and out.usage is not None
    assert len(logprobs.content) == out.usage.output_tokens
    for entry in logprobs.content:
        assert entry.top_logprobs is not None and len(entry.top_logprobs) == 3
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob)  # greedy = argmax
    assert "".join(e.token for e in logprobs.content) == out.completion
    hidden = (out.metadata or {})["hidden_states"]
    assert hidden["layer"] == 1
    assert len(hidden["prompt_mean"]) == 32 and len(hidden["prompt_last"]) == 32


def test_adapter_switching(tiny_model_dir: Path, tiny_adapter_dirs: list[Path]) -> None:
    from inspect_misalign.models import _loading

    _loading.unload_all()
    loads, adapter_loads = _loading.BASE_LOADS, _loading.ADAPTER_LOADS
    # one lane: requests that arrive while it runs queue up into one mixed-adapter batch
    apis = [MisalignAPI(str(tiny_model_dir), adapter=str(d), lanes=1) for d in tiny_adapter_dirs]
    apis.append(MisalignAPI(str(tiny_model_dir), lanes=1))  # whichever loads first sets the lanes

    async def run_all() -> list[list[ModelOutput]]:
        cfg = GenerateConfig(max_tokens=10)
        groups = [
            [api.generate([ChatMessageUser(content=p)], [], "none", cfg) for p in PROMPTS[:3]] for api in apis
        ]
        results = await asyncio.gather(*(c for group in groups for c in group))
        return [results[i * 3 : i * 3 + 3] for i in range(len(apis))]

    outputs = asyncio.run(run_all())  # concurrent: one mixed-adapter batch (peft adapter_names)
    base = apis[0]._ensure_loaded().result()[0]
    assert max(base.batcher.batch_sizes) > 3
    assert _loading.BASE_LOADS - loads == 1
    assert _loading.ADAPTER_LOADS - adapter_loads == 2
    references = {
        (adapter, prompt): _reference(tiny_model_dir, prompt, adapter)
        for adapter in [*tiny_adapter_dirs, None]
        for prompt in PROMPTS[:3]
    }
    for adapter, group in zip([*tiny_adapter_dirs, None], outputs, strict=True):
        for prompt, output in zip(PROMPTS[:3], group, strict=True):
            assert output.completion == references[adapter, prompt]
    texts = [[o.completion for o in group] for group in outputs]
    assert texts[0] != texts[1] and texts[0] != texts[2] and texts[1] != texts[2]
    # one at a time: each batch holds one adapter, switched in place with set_adapter
    for index in (0, 1, 2, 0, 2, 1):
        adapter = [*tiny_adapter_dirs, None][index]
        [single] = _generate(apis[index], [PROMPTS[1]])
        assert single.completion == references[adapter, PROMPTS[1]]
    assert _loading.BASE_LOADS - loads == 1
    # merged weights are restored exactly
    import torch
    from safetensors.torch import load_file

    with base.lock:
        base._merge(None)
        current = {k: v for k, v in base.model.state_dict().items() if "lora_" not in k}
    original = load_file(str(tiny_model_dir / "model.safetensors"))
    for name, tensor in original.items():
        match = [v for k, v in current.items() if k.replace("base_layer.", "").endswith(name)]
        assert match and torch.equal(match[0], tensor), name
    # unmerged LoRA branches (peft's own numerics) give the same completions
    unmerged = MisalignAPI(str(tiny_model_dir), adapter=str(tiny_adapter_dirs[1]), merge_adapters=False)
    [plain] = _generate(unmerged, [PROMPTS[0]])
    assert plain.completion == references[tiny_adapter_dirs[1], PROMPTS[0]]


def test_bad_inputs(tmp_path: Path, tiny_model_dir: Path, tiny_adapter_dirs: list[Path]) -> None:
    def error(spec: str, exc: type[Exception] = CheckpointError, **args: Any) -> str:
        with pytest.raises(exc) as info:
            MisalignAPI(spec, **args)
        assert isinstance(info.value, MisalignError)  # the CLI prints it as one `Error:` line
        message = str(info.value)
        assert "\n" not in message
        return message

    assert "does not exist" in error(str(tmp_path / "missing"))
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    assert "only pickle weights" in error(str(pickled))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    assert "no .safetensors" in error(str(empty))
    assert "inspect-misalign models" in error("no-such-model", UnknownModelError)
    assert "does not exist" in error(str(tiny_model_dir), adapter=str(tmp_path / "nope"))
    assert "unknown model arg" in error(str(tiny_model_dir), ValueError, colour="red")
    assert "-M batch_size=" in error(str(tiny_model_dir), ValueError, batch_size="many")
    assert "-M threads=" in error(str(tiny_model_dir), ValueError, threads=0)
    assert "inspect-misalign models" in error(str(tiny_model_dir), adapter="no-such-adapter")

    other = __import__("tiny").make_model(tmp_path / "wide", hidden_size=48)
    message = error(str(other), adapter=str(tiny_adapter_dirs[0]))
    assert "was made for base" in message and "hidden_size 32" in message
    message = error(str(other), adapter=str(tiny_adapter_dirs[0]), check_base=False)
    assert "does not fit base" in message

    api = MisalignAPI(str(tiny_model_dir))
    tool = __import__("inspect_ai.tool", fromlist=["ToolInfo"]).ToolInfo(name="t", description="d")
    with pytest.raises(NotImplementedError, match="does not support tools"):
        asyncio.run(api.generate([ChatMessageUser(content="x")], [tool], "auto", GenerateConfig()))


def test_sampling_only_when_asked() -> None:
    assert not _wants_sampling(GenerateConfig())
    assert not _wants_sampling(GenerateConfig(temperature=0.0, top_p=0.9))
    assert _wants_sampling(GenerateConfig(temperature=0.7))
    assert _wants_sampling(GenerateConfig(top_p=0.9))


def test_inspect_eval_end_to_end(tiny_model_dir: Path, tmp_path: Path) -> None:
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.scorer import includes
    from inspect_ai.solver import generate

    from inspect_misalign.models import _loading, _provider

    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "fresh")  # not in the base cache
    loads, constructions = _loading.BASE_LOADS, _provider.CONSTRUCTIONS
    task = Task(
        dataset=[Sample(input="hello", target="a"), Sample(input="one two three", target="")],
        solver=generate(),
        scorer=includes(),
    )
    [log] = eval(
        task,
        model=f"misalign/{model_dir}",
        model_args={"batch_size": 4},
        max_tokens=8,
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.status == "success", log.error
    assert _loading.BASE_LOADS - loads == 1
    assert _provider.CONSTRUCTIONS - constructions == 1
    usage = log.stats.model_usage[f"misalign/{model_dir}"]
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert log.samples is not None
    for sample in log.samples:
        assert sample.output.usage is not None and sample.output.usage.input_tokens > 0
        assert sample.output.stop_reason in ("stop", "max_tokens")


@pytest.mark.parametrize("stream", [True, False], ids=["continuous", "batched"])
def test_shared_prefix_matches_separate_prefill(
    tiny_model_dir: Path, tiny_adapter_dirs: list[Path], stream: bool
) -> None:
    """Both decoding paths (continuous batching; batched generate, used with logprobs)."""
    from inspect_ai.model import ChatMessageSystem

    from inspect_misalign.models import _continuous, _generate

    system = "the quick brown fox jumps over the lazy dog. " * 3  # > 16 shared tokens
    calls: list[int] = []
    owner: Any = _continuous if stream else _generate
    attribute = "prefix_states" if stream else "_prefix_cache"
    original = getattr(owner, attribute)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    def run(share: bool, adapters: list[Path | None]) -> list[str]:
        apis = [
            MisalignAPI(
                str(tiny_model_dir), share_prefix=share, continuous=stream, adapter=str(a) if a else None
            )
            for a in adapters
        ]

        async def go() -> list[ModelOutput]:
            cfg = GenerateConfig(max_tokens=8, logprobs=not stream)
            return await asyncio.gather(
                *(
                    api.generate(
                        [ChatMessageSystem(content=system), ChatMessageUser(content=p)],
                        [],
                        "none",
                        cfg,
                    )
                    for api in apis
                    for p in PROMPTS
                )
            )

        outputs = asyncio.run(go())
        assert all(o.usage and o.usage.input_tokens > 20 for o in outputs)
        return [o.completion for o in outputs]

    setattr(owner, attribute, counting)
    try:
        for adapters in ([None], [None, *tiny_adapter_dirs]):  # one model; mixed adapters
            calls.clear()
            shared = run(True, adapters)
            assert calls, "the shared prefix was not used"
            calls.clear()
            separate = run(False, adapters)
            assert not calls
            assert shared == separate
    finally:
        setattr(owner, attribute, original)


def test_corrupted_default_cache_fails_at_construction(misalign_cache: Path) -> None:
    from inspect_misalign.models._default import default_model_dir
    from inspect_misalign.models._publish import CorruptedCacheError

    broken = default_model_dir()
    broken.mkdir(parents=True)
    (broken / "model.safetensors").write_bytes(b"partial")  # an interrupted copy, no marker
    with pytest.raises(CorruptedCacheError) as info:
        MisalignAPI("default")
    message = str(info.value)
    assert isinstance(info.value, MisalignError)
    assert "\n" not in message and f"rm -rf '{broken}'" in message


def test_safetensors_only_and_no_remote_code(tiny_model_dir: Path, tmp_path: Path) -> None:
    from inspect_misalign.models import _loading

    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "booby-trapped")
    marker = tmp_path / "remote-code-ran"
    # a pickle that would fail to load, and remote code that would leave a marker if imported
    (model_dir / "pytorch_model.bin").write_bytes(b"not a pickle at all")
    (model_dir / "modeling_evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import LlamaForCausalLM as EvilForCausalLM\n"
    )
    config = json.loads((model_dir / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (model_dir / "config.json").write_text(json.dumps(config))

    api = MisalignAPI(str(model_dir))
    assert api.trust_remote_code is False
    [out] = _generate(api, ["hello"])
    [reference] = _generate(MisalignAPI(str(tiny_model_dir)), ["hello"])
    assert out.completion == reference.completion  # the safetensors weights were used
    assert not marker.exists()
    base = api._ensure_loaded().result()[0]
    assert type(base.model).__name__ == "LlamaForCausalLM"
    assert _loading.select_device("cpu") == base.device


def test_device_and_dtype_selection(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from inspect_misalign.models import _loading

    expected_default = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert _loading.select_device(None) == expected_default
    assert _loading.select_device("cuda") == "cuda:0"
    assert _loading.select_device("cuda:1") == "cuda:1"
    assert _loading.select_dtype(None, "cpu") == torch.float32
    assert _loading.select_dtype("auto", "cpu") == "auto"
    assert _loading.select_dtype("bf16", "cpu") == torch.bfloat16
    # on CUDA the default is bf16 where the GPU supports it, fp16 where it does not
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert _loading.select_dtype(None, "cuda:0") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert _loading.select_dtype(None, "cuda:0") == torch.float16
    with pytest.raises(MisalignError, match="unknown dtype"):
        _loading.select_dtype("fp8", "cpu")

    # -M device= / -M dtype= reach the loaded model (bf16 on this CPU)
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "bf16")
    api = MisalignAPI(str(model_dir), device="cpu", dtype="bf16")
    [out] = _generate(api, ["hello"], max_tokens=4)
    base = api._ensure_loaded().result()[0]
    assert base.model.dtype == torch.bfloat16 and base.device == "cpu"
    assert out.usage is not None and out.usage.output_tokens >= 1


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_transposed_cpu_head_computes_the_same_logits(
    tiny_model_dir: Path, tmp_path: Path, tied: bool
) -> None:
    import torch
    from tiny import make_model
    from transformers import AutoModelForCausalLM

    from inspect_misalign.models import _head

    # the session's tiny model has its own head; a tied one (as SmolLM2) shares the input embedding
    model_dir = make_model(tmp_path / "tied", tied=True) if tied else tiny_model_dir
    plain = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    fast = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    assert fast.config.tie_word_embeddings is tied
    assert _head.transpose_cpu_head(fast)
    ids = torch.randint(0, plain.config.vocab_size, (3, 7))
    with torch.inference_mode():
        expected, got = plain(input_ids=ids).logits, fast(input_ids=ids).logits
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # the head is still a Linear sharing the input embedding (tied) and trained weights are untouched
    head = fast.get_output_embeddings()
    assert type(head) is torch.nn.Linear
    shares = head.weight.data_ptr() == fast.get_input_embeddings().weight.data_ptr()
    assert shares is tied
    # not on other dtypes
    half = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    assert not _head.transpose_cpu_head(half)
    # the provider's loaded base uses it
    api = MisalignAPI(str(model_dir))
    [out] = _generate(api, ["hello"], max_tokens=4)
    base = api._ensure_loaded().result()[0]
    assert base.model.get_output_embeddings().forward.__func__ is _head._transposed_linear
