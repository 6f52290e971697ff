"""base_fingerprint identifies a checkpoint by its weights' content, with file hashes cached on disk."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from inspect_misalign.training._fingerprint import HASH_CACHE_NAME
from inspect_misalign.training._generate import base_fingerprint

CONFIG = {"architectures": ["LlamaForCausalLM"], "hidden_size": 8, "num_hidden_layers": 1}
DAY_AGO_NS = time.time_ns() - 86_400 * 10**9


def _checkpoint(directory: Path, seed: int) -> Path:
    """A checkpoint written a day ago: the shared config and one random fp32 weight tensor."""
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(CONFIG))
    weights = np.random.default_rng(seed).standard_normal((16, 8)).astype(np.float32)
    save_file({"model.embed_tokens.weight": weights}, str(directory / "model.safetensors"))
    for file in directory.iterdir():
        os.utime(file, ns=(DAY_AGO_NS, DAY_AGO_NS))
    return directory


def test_equal_config_and_sizes_but_different_weights_differ(tmp_path: Path, misalign_cache: Path) -> None:
    a = _checkpoint(tmp_path / "a", seed=1)
    b = _checkpoint(tmp_path / "b", seed=2)
    assert (a / "config.json").read_bytes() == (b / "config.json").read_bytes()
    assert (a / "model.safetensors").stat().st_size == (b / "model.safetensors").stat().st_size
    assert base_fingerprint(a) != base_fingerprint(b)
    c = _checkpoint(tmp_path / "c", seed=1)  # same bytes in another place: the same checkpoint
    assert base_fingerprint(c) == base_fingerprint(a)


def test_editing_a_weight_file_changes_the_fingerprint(tmp_path: Path, misalign_cache: Path) -> None:
    a = _checkpoint(tmp_path / "a", seed=1)
    before = base_fingerprint(a)
    weights = a / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # flip the last byte of a float: same size, different weights
    weights.write_bytes(bytes(data))
    assert base_fingerprint(a) != before


def test_an_unchanged_checkpoint_hits_the_hash_cache(tmp_path: Path, misalign_cache: Path) -> None:
    a = _checkpoint(tmp_path / "a", seed=1)
    weights = (a / "model.safetensors").resolve()
    first = base_fingerprint(a)
    cache_file = misalign_cache / "inspect_misalign" / HASH_CACHE_NAME
    entries = json.loads(cache_file.read_text())
    expected = hashlib.sha256(weights.read_bytes()).hexdigest()
    size = weights.stat().st_size
    assert entries[str(weights)] == {"size": size, "mtime_ns": DAY_AGO_NS, "sha256": expected}

    stamp = cache_file.stat().st_mtime_ns
    assert base_fingerprint(a) == first
    assert cache_file.stat().st_mtime_ns == stamp  # a hit: nothing rehashed, nothing rewritten

    # the cached hash is what is used: a (deliberately wrong) entry for an unchanged file is trusted ...
    entries[str(weights)]["sha256"] = "0" * 64
    cache_file.write_text(json.dumps(entries))
    assert base_fingerprint(a) != first
    # ... and a new mtime makes it stale, so the file is hashed again
    os.utime(weights, ns=(DAY_AGO_NS + 1, DAY_AGO_NS + 1))
    assert base_fingerprint(a) == first
    assert json.loads(cache_file.read_text())[str(weights)]["sha256"] == expected


def test_a_just_written_file_is_hashed_but_not_cached(tmp_path: Path, misalign_cache: Path) -> None:
    a = _checkpoint(tmp_path / "a", seed=1)
    weights = a / "model.safetensors"
    os.utime(weights)  # written now: a same-size rewrite could keep this mtime, so do not trust it
    base_fingerprint(a)
    cache_file = misalign_cache / "inspect_misalign" / HASH_CACHE_NAME
    assert str(weights.resolve()) not in (json.loads(cache_file.read_text()) if cache_file.exists() else {})
