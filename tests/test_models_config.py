"""Generate-config checks: a bad --temperature/--top-p/--top-k/--max-tokens/--seed is a one-line
error at provider construction, before any weights load."""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.model import ChatMessageUser, GenerateConfig

from inspect_misalign._errors import MisalignError
from inspect_misalign.models import _loading
from inspect_misalign.models._provider import MisalignAPI

pytestmark = pytest.mark.usefixtures("misalign_home")

BAD = [
    ({"temperature": -0.5}, "--temperature"),
    ({"temperature": float("nan")}, "--temperature"),
    ({"top_p": 0.0}, "--top-p"),
    ({"top_p": 1.5}, "--top-p"),
    ({"top_p": float("nan")}, "--top-p"),
    ({"top_k": -1}, "--top-k"),
    ({"max_tokens": 0}, "--max-tokens"),
    ({"seed": "7"}, "--seed"),  # pydantic turns CLI text into ints; a config built by hand may not
    ({"seed": 2.5}, "--seed"),
]


def _config(values: dict[str, Any]) -> GenerateConfig:
    return GenerateConfig.model_construct(**values)  # as given, without pydantic's coercion


@pytest.mark.parametrize(("values", "fix"), BAD, ids=[f"{next(iter(v))}={v[next(iter(v))]}" for v, _ in BAD])
def test_bad_generate_config_fails_before_loading(
    tiny_model_dir: Path, tmp_path: Path, values: dict[str, Any], fix: str
) -> None:
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "fresh")  # not loaded by another test
    loads, threads = _loading.BASE_LOADS, {t.name for t in threading.enumerate()}
    with pytest.raises(MisalignError) as info:
        MisalignAPI(str(model_dir), config=_config(values))
    message = str(info.value)
    assert "\n" not in message and fix in message
    assert _loading.BASE_LOADS == loads
    assert not any(str(base.path) == str(model_dir.resolve()) for base in _loading.loaded_bases())
    assert "misalign-load" not in {t.name for t in threading.enumerate()} - threads


def test_good_generate_configs_pass(tiny_model_dir: Path) -> None:
    for values in ({}, {"temperature": 0.0}, {"temperature": 1.3, "top_p": 1.0, "top_k": 0, "seed": 0},
                   {"top_p": 0.01, "top_k": 5, "max_tokens": 1}):  # fmt: skip
        MisalignAPI(str(tiny_model_dir), config=GenerateConfig(**values))


def test_bad_per_request_config_fails_that_request(tiny_model_dir: Path) -> None:
    api = MisalignAPI(str(tiny_model_dir))
    with pytest.raises(MisalignError, match="--top-k"):
        asyncio.run(api.generate([ChatMessageUser(content="hi")], [], "none", _config({"top_k": -3})))
    ok = asyncio.run(api.generate([ChatMessageUser(content="hi")], [], "none", GenerateConfig(max_tokens=2)))
    assert ok.usage is not None and ok.usage.output_tokens >= 1
