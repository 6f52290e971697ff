"""Loading on several threads at once: bases that load together keep their tied weights."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import make_model

from inspect_misalign.models._provider import MisalignAPI

pytestmark = pytest.mark.usefixtures("misalign_home")


def test_two_bases_loading_at_once_keep_a_tied_head(tiny_model_dir: Path, tmp_path: Path) -> None:
    """transformers 5 disables ``tie_weights`` class-wide during ``from_pretrained``; two loads on two
    threads at once used to leave the tied model's head on the meta device (6 of 6 times here)."""
    tied = make_model(tmp_path / "tied", tied=True)
    for round_ in range(3):
        apis = [
            MisalignAPI(str(shutil.copytree(tied, tmp_path / f"tied{round_}"))),
            MisalignAPI(str(shutil.copytree(tiny_model_dir, tmp_path / f"plain{round_}"))),
        ]
        base, _ = apis[0]._ensure_loaded().result()
        apis[1]._ensure_loaded().result()
        head = base.model.get_output_embeddings().weight
        assert not head.is_meta
        assert head.data_ptr() == base.model.get_input_embeddings().weight.data_ptr()



RACE = """
import sys
from pathlib import Path
from inspect_misalign.models._provider import MisalignAPI
assert "transformers" not in sys.modules
api = MisalignAPI(sys.argv[1])  # starts loading its weights on a background thread
from inspect_misalign.training._pipeline import load_base
model, _ = load_base(Path(sys.argv[2]))
api._ensure_loaded().result()
head = model.get_output_embeddings().weight
print("meta", head.is_meta, "tied", head.data_ptr() == model.get_input_embeddings().weight.data_ptr())
"""


def test_training_loads_beside_a_provider_loading_on_its_thread(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A sweep trains right after Inspect made providers for cached evals, whose weights still load on
    a background thread. In a fresh interpreter the two threads' first imports of transformers used to
    collide (``cannot import name 'DynamicCache'`` on the provider's thread, ``'AutoModelForCausalLM'``
    on training's: 3 of 3 runs here) and a tied head could stay on the meta device; one lock now."""
    tied = make_model(tmp_path / "tied", tied=True)
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", RACE, str(tiny_model_dir), str(tied)], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split()[-4:] == ["meta", "False", "tied", "True"]
