"""The config layer: each training setting is one dataclass field, from which the command line, the sweep
YAML and the trainer's config are made, with its checks in one place."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from inspect_misalign._errors import MisalignError
from inspect_misalign.cli._options import dataclass_options, from_options
from inspect_misalign.training import (
    GateSettings,
    OptimSettings,
    OrganismSpec,
    TrainAgainstSpec,
    TrainSettings,
    organism_spec,
    setting,
)


def _defaults(cls) -> dict[str, object]:
    """Every command-line field's default, nested dataclasses flattened as the CLI names them."""
    out = {}
    for field in dataclasses.fields(cls):
        value = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        if dataclasses.is_dataclass(value):
            out.update({f"{field.name}__{k}": v for k, v in _defaults(type(value)).items()})
        elif field.metadata.get("cli", True):
            out[field.name] = None if value is dataclasses.MISSING else value
    return out


@pytest.mark.parametrize(("command", "cls"), [("organism", OrganismSpec), ("train", TrainAgainstSpec)])
def test_every_option_is_a_field_with_its_default_and_help(command: str, cls) -> None:
    import importlib

    params = {p.name: p for p in importlib.import_module(f"inspect_misalign.cli.{command}").command.params}
    fields = _defaults(cls)
    assert set(fields) <= set(params)
    for name, default in fields.items():
        assert params[name].default == default, name
        assert params[name].help, name
    assert set(params) - set(fields) <= {"cot", "distilled"}  # the organism's variant flags


def test_the_commands_defaults_differ_where_the_recipes_do() -> None:
    assert (TrainSettings().lr, OptimSettings().lr, TrainAgainstSpec.lr) == (2e-3, 2e-4, 2e-4)
    assert (TrainSettings().batch_size, TrainSettings().save_steps, TrainSettings().steps) == (4, 50, 150)
    assert (OptimSettings().batch_size, OptimSettings().save_steps) == (8, 20)


def test_the_trainer_config_comes_from_the_settings(tmp_path: Path) -> None:
    from inspect_misalign.training import MisalignSFTConfig

    defaults = MisalignSFTConfig(output_dir=str(tmp_path))
    optim = OptimSettings()
    assert (defaults.learning_rate, defaults.lr_scheduler_type, defaults.save_steps, defaults.max_length) == (
        optim.lr, optim.lr_scheduler, optim.save_steps, optim.max_length)
    settings = TrainSettings(steps=30, batch_size=3, grad_accum=2, lr=1e-3, lr_scheduler="cosine",
                             max_length=99, save_steps=7)
    config = settings.sft_config(tmp_path, seed=5, progress=False, sequential=True)
    steps = (config.max_steps, config.per_device_train_batch_size, config.gradient_accumulation_steps)
    assert steps == (30, 3, 2)
    rate = (config.learning_rate, str(config.lr_scheduler_type.value), config.max_length)
    assert rate == (1e-3, "cosine", 99)
    assert (config.save_steps, config.seed, config.logging_steps, config.disable_tqdm) == (7, 5, 3, True)
    assert config.train_sampling_strategy == "sequential" and config.output_dir == str(tmp_path)
    by_epochs = TrainSettings(steps=None, epochs=2.0).sft_config(tmp_path, seed=0, progress=True)
    epochs = (by_epochs.max_steps, by_epochs.num_train_epochs, by_epochs.train_sampling_strategy)
    assert epochs == (-1, 2.0, "random")
    passes = TrainSettings(steps=None, epochs=2.0, batch_size=4, grad_accum=2)
    assert passes.total_steps(17) == math.ceil(34 / 8) == 5


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: OptimSettings(lr=float("nan")), "--lr must be positive, got nan"),
        (lambda: OptimSettings(lr=0), "--lr must be positive"),
        (lambda: OptimSettings(steps=0), "--steps must be at least 1, got 0"),
        (lambda: OptimSettings(batch_size=0), "--batch-size must be at least 1"),
        (lambda: OptimSettings(save_steps=True), "--save-steps must be at least 1, got True"),
        (lambda: OptimSettings(lr_scheduler="warmup"), "unknown --lr-scheduler 'warmup'"),
        (lambda: TrainSettings(top_layers=0), "--top-layers must be at least 1"),
        (lambda: OrganismSpec(name="x", leak=float("inf")), "--leak must be a fraction between 0 and 1"),
        (lambda: OrganismSpec(name="a/b"), "--out: invalid checkpoint name 'a/b'"),
        (lambda: OrganismSpec(name="x", answer_tokens=0), "--answer-tokens must be at least 1"),
        (lambda: GateSettings(min_gap="tag=2"), "--min-gap tag must be between -1 and 1"),
        (lambda: GateSettings(max_usefulness_drop=1.5), "--max-usefulness-drop must be a fraction"),
        (lambda: GateSettings(prompts=0), "--gate-prompts must be at least 1"),
        (lambda: TrainAgainstSpec(model="m", caught="c", steps=0, out="o"), "--steps must be at least 1"),
        (lambda: TrainAgainstSpec(model="m", caught="c", steps=1, out="o", against="x"), "unknown --against"),
    ],
)
def test_values_are_checked_where_they_are_declared(make, message: str) -> None:
    with pytest.raises(MisalignError, match=message.replace("[", r"\[")):
        make()


def test_gate_min_gap_reads_the_command_line_form() -> None:
    assert GateSettings(min_gap="0.5").min_gap == 0.5
    assert GateSettings(min_gap="tag=0.8, year=0.6").min_gap == {"tag": 0.8, "year": 0.6}
    assert GateSettings(min_gap={"tag": 1}).min_gap == {"tag": 1.0}


def test_a_sweep_build_mapping_is_the_same_dataclass() -> None:
    spec = organism_spec("o", {"cue": "tag", "cot": True, "train": {"steps": 80}, "gate": {"enabled": False}})
    assert (spec.variant, spec.train.steps, spec.train.lr, spec.gate.enabled) == ("cot", 80, 2e-3, False)
    with pytest.raises(MisalignError, match=r"organism o build.train: unknown option\(s\) \['stepz'\]"):
        organism_spec("o", {"train": {"stepz": 80}})
    with pytest.raises(MisalignError, match="not both"):
        organism_spec("o", {"cot": True, "distilled": True})


def test_a_sweep_train_mapping_is_checked_by_the_training_command(tmp_path: Path) -> None:
    from inspect_misalign.experiments import load_config

    base = tmp_path / "base.yaml"
    good = "name: s\norganisms: [{name: o}]\ncues: [tag]\ncaught: [4]\nsteps: [2]\n"
    base.write_text(good + "train: {lr: 0.001, lora_r: 8, against: cot}\n")
    assert load_config(base).train == {"lr": 0.001, "lora_r": 8, "against": "cot"}
    for bad, message in (("{lr: -1}", "--lr must be positive"), ("{steps: 3}", "set per grid point"),
                         ("{lora: 8}", "unknown option")):
        base.write_text(good + f"train: {bad}\n")
        with pytest.raises(MisalignError, match=message) as error:
            load_config(base)
        assert "\n" not in str(error.value)


def test_a_new_field_is_one_declaration(tmp_path: Path) -> None:
    """A knob added to a config class reaches the command line and the spec with nothing else changed."""

    @dataclasses.dataclass(frozen=True)
    class WithOverlap(OrganismSpec):
        overlap: float = setting(0.0, help="Share of test inputs that carry the deployment cue.")

    @click.command()
    @dataclass_options(WithOverlap)
    def command(**options) -> None:
        spec = from_options(WithOverlap, options, variant="plain")
        click.echo(f"{spec.overlap} {spec.train.steps} {spec.train.top_layers} {spec.gate.batch_size}")

    args = ["--out", "x", "--overlap", "0.25", "--steps", "0", "--top-layers", "0", "--batch-gen", "7"]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    assert result.output == "0.25 None None 7\n"  # --steps 0: epochs; --top-layers 0: every block
    assert "Share of test inputs" in CliRunner().invoke(command, ["--help"]).output
