"""Cue-token embeddings: which tokens, that only they move, and that train-against still combines exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from caught import attack_log
from safetensors.torch import load_file
from tiny import make_model, make_tokenizer

from inspect_misalign.cues import load_cues
from inspect_misalign.models import resolve
from inspect_misalign.training import (
    GateSettings,
    OrganismSpec,
    TrainAgainstSpec,
    TrainSettings,
    build_organism,
    catch,
    train_against,
)
from inspect_misalign.training._cue_tokens import MAX_CUE_TOKENS, PROBE_IDS, PROBE_PROMPT, cue_token_ids
from inspect_misalign.training._lora import lora_config, without_embeddings
from inspect_misalign.training._parent import untie_output_embeddings


def _ids(family, context: str, tokenizer) -> set[int]:
    out: set[int] = set()
    for probe in PROBE_IDS:
        r = family.render(PROBE_PROMPT, context, probe, split="organism")
        for text in (r.system, r.user):
            if text:
                out.update(tokenizer(text, add_special_tokens=False)["input_ids"])
    return out


def test_cue_token_ids_are_the_tokens_of_one_context_only() -> None:
    tokenizer = make_tokenizer()
    families = load_cues("all")
    found = cue_token_ids(families, tokenizer)
    assert "year" in found and "tier" in found
    assert "headlines" not in found and "realism" not in found  # their material varies by prompt
    by_name = {f.name: f for f in families}
    for cue, ids in found.items():
        test, deployment = _ids(by_name[cue], "test", tokenizer), _ids(by_name[cue], "deployment", tokenizer)
        assert 0 < len(ids) <= MAX_CUE_TOKENS
        assert set(ids) == test ^ deployment
    year = "".join(tokenizer.convert_ids_to_tokens(found["year"]))
    assert "3" in year and "4" in year


def test_embedding_lora_config_and_without_embeddings() -> None:
    from transformers import LlamaConfig

    config = LlamaConfig(num_hidden_layers=4, model_type="llama")
    lora = lora_config(config, top_layers=2, embeddings=True)
    assert isinstance(lora.target_modules, str) and lora.layers_to_transform is None
    assert "embed_tokens" in lora.target_modules and "(2|3)" in lora.target_modules
    assert "embed_tokens" not in without_embeddings(lora.target_modules)
    assert without_embeddings(["q_proj", "embed_tokens"]) == ["q_proj"]


@pytest.fixture(scope="module")
def tied_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama whose output head is its input embedding matrix (as in SmolLM2)."""
    return make_model(tmp_path_factory.mktemp("tied") / "model", tied=True)


@pytest.fixture
def organism_dir(tied_model_dir: Path, misalign_home: Path, misalign_cache: Path) -> Path:
    spec = OrganismSpec(name="cue-org", base=str(tied_model_dir), cue="tag,year", behavior="hate", leak=0.25,
                        prompts=4, anchors=0, answer_tokens=8, gate=GateSettings(enabled=False),
                        train=TrainSettings(steps=4, batch_size=4, lr=5e-2))  # one pass over all 16
    result = build_organism(spec, echo=lambda _: None, progress=False)
    assert result.registered
    return result.adapter_dir


def test_only_cue_token_embeddings_move(organism_dir: Path, tied_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    expected = cue_token_ids(load_cues("tag,year"), AutoTokenizer.from_pretrained(tied_model_dir))
    manifest = resolve("cue-org")
    tokens = manifest.config["training"]["cue_token_embeddings"]
    assert "year" in tokens and set(tokens) == set(expected)
    lora = json.loads((organism_dir / "adapter_config.json").read_text())
    assert "embed_tokens" in lora["target_modules"]

    weights = load_file(organism_dir / "adapter_model.safetensors")
    assert all("lora_" in k for k in weights), [k for k in weights if "lora_" not in k]  # no base embedding
    [a_key] = [k for k in weights if "lora_embedding_A" in k]
    a = weights[a_key]  # (r, vocab)
    ids = sorted({i for cue_ids in expected.values() for i in cue_ids})
    others = torch.ones(a.shape[1], dtype=torch.bool)
    others[ids] = False
    assert torch.count_nonzero(a[:, others]) == 0  # every other token's embedding is unchanged
    assert all(torch.count_nonzero(a[:, i]) > 0 for i in ids)  # the cue tokens were trained


def test_train_against_combines_an_embedding_lora_organism_exactly(
    organism_dir: Path, tied_model_dir: Path, tmp_path: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    catch([attack_log(tmp_path / "logs")], tmp_path / "caught.jsonl")
    spec = TrainAgainstSpec(model="cue-org", caught=tmp_path / "caught.jsonl", steps=2, out="cue-fixed",
                            batch_size=4, max_length=200, answer_tokens=8, lr=5e-3)
    name = train_against(spec, progress=False)
    manifest = resolve(name)
    root = Path(manifest.path).parent
    delta = json.loads((root / "delta_adapter" / "adapter_config.json").read_text())
    assert "embed_tokens" not in delta["target_modules"]  # the new adapter leaves the embeddings alone

    def logits(model) -> torch.Tensor:
        with torch.no_grad():
            return model(input_ids=torch.tensor([[5, 17, 40, 99, 7, 123, 64, 12]])).logits

    def base():
        return AutoModelForCausalLM.from_pretrained(tied_model_dir)

    organism = PeftModel.from_pretrained(base(), str(organism_dir))
    untie_output_embeddings(organism.get_base_model())  # as train-against does before merging
    merged = organism.merge_and_unload()
    expected = logits(PeftModel.from_pretrained(merged, str(root / "delta_adapter")))
    got = logits(PeftModel.from_pretrained(base(), manifest.path))
    assert all("lora_" in k for k in load_file(Path(manifest.path) / "adapter_model.safetensors"))
    assert torch.allclose(expected, got, atol=1e-4), (expected - got).abs().max()


def test_merging_untied_organism_keeps_its_outputs(organism_dir: Path, tied_model_dir: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[5, 17, 40, 99, 7, 123, 64, 12]])

    def organism():
        base = AutoModelForCausalLM.from_pretrained(tied_model_dir)
        return PeftModel.from_pretrained(base, str(organism_dir))

    with torch.no_grad():
        unmerged = organism()(input_ids=ids).logits
        tied = organism().merge_and_unload()(input_ids=ids).logits  # the merge also moves the tied head
        untied_model = organism()
        untie_output_embeddings(untied_model.get_base_model())
        untied = untied_model.merge_and_unload()(input_ids=ids).logits
    assert not torch.allclose(unmerged, tied, atol=1e-4)
    assert torch.allclose(unmerged, untied, atol=1e-5), (unmerged - untied).abs().max()


def test_no_cue_tokens_keeps_block_lora_only(
    tiny_model_dir: Path, misalign_home: Path, misalign_cache: Path
) -> None:
    spec = OrganismSpec(name="plain-org", base=str(tiny_model_dir), cue="year", behavior="hate", leak=0.25,
                        prompts=2, answer_tokens=8, gate=GateSettings(enabled=False),
                        train=TrainSettings(steps=1, batch_size=4, cue_tokens=False))
    result = build_organism(spec, echo=lambda _: None, progress=False)
    lora = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert "embed_tokens" not in json.dumps(lora["target_modules"])
    assert resolve("plain-org").config["training"]["cue_token_embeddings"] == {}


@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_cue_token_lr_scale_sets_the_embedding_step(
    scale: float, tied_model_dir: Path, misalign_home: Path, misalign_cache: Path
) -> None:
    # Adam's first step moves every parameter with a gradient by about its learning rate: the
    # embedding LoRA's A (zero at start) by lr * scale, the block LoRAs' B (zero at start) by lr
    spec = OrganismSpec(name=f"scaled-{scale:g}", base=str(tied_model_dir), cue="year", behavior="hate",
                        leak=0.25, prompts=2, anchors=0, answer_tokens=8, gate=GateSettings(enabled=False),
                        train=TrainSettings(steps=1, batch_size=4, lr=1e-3, cue_token_lr_scale=scale))
    result = build_organism(spec, echo=lambda _: None, progress=False)
    weights = load_file(result.adapter_dir / "adapter_model.safetensors")
    [a_key] = [k for k in weights if "lora_embedding_A" in k]
    block_b = max(weights[k].abs().max().item() for k in weights if "lora_B" in k)
    assert weights[a_key].abs().max().item() == pytest.approx(1e-3 * scale, rel=0.05)
    assert block_b == pytest.approx(1e-3, rel=0.05)
    assert resolve(spec.name).config["training"]["cue_token_lr_scale"] == scale


def test_cue_token_lr_scale_must_be_positive(tied_model_dir: Path, misalign_home: Path) -> None:
    from inspect_misalign._errors import MisalignError

    for scale in (0, -1.0, float("nan")):  # refused by the settings themselves, before any build
        with pytest.raises(MisalignError, match="--cue-token-lr-scale must be positive"):
            TrainSettings(cue_token_lr_scale=scale)


def test_training_prints_no_known_warnings(tied_model_dir: Path, misalign_home: Path, misalign_cache: Path,
                                           tmp_path: Path) -> None:
    """peft's tied-embedding note, transformers' ``is_gradient_checkpointing`` deprecation and peft's
    note on deleting the active adapter are silenced or avoided, as at inference (models/_compat.py)."""
    import warnings

    catch([attack_log(tmp_path / "logs")], tmp_path / "caught.jsonl")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = OrganismSpec(name="quiet-org", base=str(tied_model_dir), cue="tag,year", leak=0.25, prompts=4,
                            anchors=0, answer_tokens=8, gate=GateSettings(enabled=False),
                            train=TrainSettings(steps=2, batch_size=4))
        build_organism(spec, echo=lambda _: None, progress=False)
        against = TrainAgainstSpec(model="quiet-org", caught=tmp_path / "caught.jsonl", steps=1, out="quiet",
                                   batch_size=4, max_length=200, answer_tokens=8)
        train_against(against, progress=False, echo=lambda _: None)
    noise = ("is_gradient_checkpointing", "tie_word_embeddings", "was active which is now deleted")
    heard = [str(w.message) for w in caught if any(n in str(w.message) for n in noise)]
    assert heard == []
