"""Loading on several threads at once: bases that load together keep their tied weights."""

from __future__ import annotations

import shutil
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
