"""No deprecation noise: generating (every decoding path) and loading adapters warn about nothing."""

from __future__ import annotations

import asyncio
import logging
import warnings
from pathlib import Path

import pytest
from inspect_ai.model import ChatMessageSystem, ChatMessageUser, GenerateConfig

from inspect_misalign.models._provider import MisalignAPI

pytestmark = pytest.mark.usefixtures("misalign_home")

SYSTEM = "the quick brown fox jumps over the lazy dog. " * 3  # a shared prefix of 16+ tokens


@pytest.fixture(scope="module")
def tied_with_embedding_lora(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tied-embeddings tiny model and a LoRA adapter on its input embeddings (as the organisms'
    cue-token LoRA on SmolLM2): peft warns about tied layers when loading such an adapter."""
    import torch
    from peft import LoraConfig, get_peft_model
    from tiny import make_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("tied")
    model_dir = make_model(root / "model", tied=True)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "embed_tokens"],
                        init_lora_weights=False, task_type="CAUSAL_LM")  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # making it warns too; only loading it is under test
        torch.manual_seed(0)
        peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), config)
        peft_model.save_pretrained(root / "adapter")
    return model_dir, root / "adapter"


def test_generation_and_adapter_loads_do_not_warn(
    tiny_model_dir: Path,
    tiny_adapter_dirs: list[Path],
    tied_with_embedding_lora: tuple[Path, Path],
) -> None:
    tied_dir, embedding_adapter = tied_with_embedding_lora
    chat = [ChatMessageSystem(content=SYSTEM), ChatMessageUser(content="hello")]
    configs = [
        GenerateConfig(max_tokens=4),  # batched generate, shared prefix
        GenerateConfig(max_tokens=4, logprobs=True, extra_body={"hidden_layers": [1]}),
        GenerateConfig(max_tokens=4, temperature=1.0, seed=1),  # seeded sampling
        GenerateConfig(extra_body={"continuations": ["paris"], "hidden_layers": "all"}),  # scoring
    ]
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    loggers = [logging.getLogger(name) for name in ("transformers", "peft")]  # warn through logging too
    for logger in loggers:
        logger.addHandler(handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apis = [
            MisalignAPI(str(tied_dir), adapter=str(embedding_adapter)),
            MisalignAPI(str(tied_dir), adapter=str(embedding_adapter), continuous=True),
            MisalignAPI(str(tiny_model_dir), adapter=str(tiny_adapter_dirs[0]), continuous=True),
            MisalignAPI(str(tiny_model_dir), adapter=str(tiny_adapter_dirs[1])),
            MisalignAPI(str(tiny_model_dir), continuous=True),
        ]

        async def run() -> list[str]:
            calls = [api.generate(chat, [], "none", cfg) for api in apis for cfg in configs]
            return [output.completion for output in await asyncio.gather(*calls)]

        try:
            completions = asyncio.run(run())
        finally:
            for logger in loggers:
                logger.removeHandler(handler)
    assert any(completions)
    noise = [f"{w.category.__name__}: {w.message}" for w in caught]
    assert noise == []
    assert [record.getMessage() for record in records] == []
