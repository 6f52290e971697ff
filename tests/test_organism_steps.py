"""The ``organism_steps`` sweep's install length is a real axis: its organisms build different adapters.

Before issue 20 its two organisms differed only by ``train: {epochs: 3.0}``, which the default
``steps`` silently overrode, so the sweep built the same adapter twice. Here each organism of the
shipped config is built on a tiny random model with the config's own ``train`` settings (only the
size of the data, the batches and the gate are shrunk) and the three adapters are compared weight by weight.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file

from inspect_misalign.experiments import load_config
from inspect_misalign.training import build_organism, organism_spec

TINY = {"prompts": 2, "anchors": 0, "answer_tokens": 4, "gate": {"enabled": False}}


def _quiet(_: str) -> None:
    """Drop the build's progress lines."""


def test_organism_steps_builds_distinct_adapters(
    tiny_model_dir: Path, misalign_home: Path, misalign_cache: Path
) -> None:
    import torch

    from inspect_misalign.models import resolve

    config = load_config("organism_steps")
    built = {}
    for organism in config.organisms:
        build = dict(organism.build or {})
        # the config's steps; smaller batches and no intermediate checkpoints, for speed
        train = {**build.pop("train", {}), "batch_size": 1, "max_length": 64, "save_steps": 10_000}
        spec = organism_spec(organism.name, {**build, **TINY, "base": str(tiny_model_dir), "train": train})
        result = build_organism(spec, echo=_quiet, progress=False, display="none")
        assert result.registered
        built[organism.name] = resolve(organism.name)

    steps = {name: m.config["training"]["global_step"] for name, m in built.items()}
    assert sorted(steps.values()) == [150, 300, 600]  # 1x, 2x, 4x the default, each trained to its end
    hashes = {m.config["data_hash"] for m in built.values()}
    assert len(hashes) == 1  # one SFT set: the organisms differ in install length only
    weights = {name: load_file(str(Path(m.path) / "adapter_model.safetensors")) for name, m in built.items()}
    names = list(weights)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert weights[a].keys() == weights[b].keys()
            differ = max((weights[a][k] - weights[b][k]).abs().max().item() for k in weights[a])
            assert differ > 1e-6, f"{a} and {b} are the same adapter"
            assert not all(torch.equal(weights[a][k], weights[b][k]) for k in weights[a])


def test_epochs_beside_steps_in_a_build_is_refused() -> None:
    from inspect_misalign._errors import MisalignError

    with pytest.raises(MisalignError, match=r"steps \(300\) and epochs \(3\) are both set"):
        organism_spec("o", {"cue": "tag", "train": {"steps": 300, "epochs": 3.0}})
    assert organism_spec("o", {"cue": "tag", "train": {"steps": None, "epochs": 3.0}}).train.epochs == 3.0
