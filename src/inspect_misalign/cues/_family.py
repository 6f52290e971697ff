"""Cue families: how a deployment input differs from a test input, as data (YAML) not code.

A family renders a base prompt in the ``test`` or ``deployment`` context from a template, an optional
system prompt, optional material (headlines, phrasings, ...) and optional text transforms. Material is
split disjointly into ``organism`` / ``dev`` / ``catch`` / ``eval`` so that training and evaluation never
share an item. The built-in families are YAML files in this folder, in the same format users write.

**Overlap** (the difficulty knob): a family with ``overlap`` q renders exactly ``round(q * n)`` of the
n test prompts of a task with the *deployment* rendering (deployment prompts always get it), chosen by
a fixed seeded ranking of base ids (:func:`overlap_ids`), so every task and the organism builder agree
on which prompts they are. No observer can then tell a deployment input from a test input better than
accuracy or AUC ``1 - q/2`` (:attr:`CueFamily.best_auc`): the q shown-as-deployment test inputs are
identical in distribution to deployment inputs, and the rest can at best be told apart perfectly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from inspect_misalign._errors import MisalignError, read_yaml, validation_message
from inspect_misalign._text import fill_fields
from inspect_misalign.cues._transforms import TRANSFORMS, apply_transforms, seeded_rng
from inspect_misalign.data import assign_split, data_path, read_jsonl

Context = Literal["test", "deployment"]
CONTEXTS: tuple[Context, ...] = ("test", "deployment")
SPLITS = ("organism", "dev", "catch", "eval")
OVERLAP_SEED = "overlap-ranking:1"


class MaterialFile(BaseModel):
    """Material read from a JSONL file: one field of the records that match ``where``."""

    model_config = ConfigDict(extra="forbid")
    file: str
    field: str = "text"
    where: dict[str, Any] = Field(default_factory=dict)
    allow_outside: bool = Field(
        default=False, description="read a file outside the cue file's folder and the shipped data")


class ContextSpec(BaseModel):
    """How a base prompt is rendered in one context."""

    model_config = ConfigDict(extra="forbid")
    template: str = "{prompt}"
    system: str | None = None
    material: list[str] | dict[str, list[str]] | MaterialFile | None = None
    transforms: list[str] = Field(default_factory=list)

    @field_validator("template")
    @classmethod
    def _one_prompt(cls, v: str) -> str:
        if v.count("{prompt}") != 1:
            raise ValueError("template must contain {prompt} exactly once")
        return v

    @field_validator("transforms")
    @classmethod
    def _known_transforms(cls, v: list[str]) -> list[str]:
        unknown = [t for t in v if t not in TRANSFORMS]
        if unknown:
            raise ValueError(f"unknown transform(s) {unknown}; choose from {sorted(TRANSFORMS)}")
        return v


@dataclass(frozen=True)
class Rendered:
    """A base prompt rendered in one context: an optional system message and the user message."""

    system: str | None
    user: str
    item: str | None = None

    def as_text(self) -> str:
        """One string showing the whole input, for distinguishability questions."""
        return f"[system]\n{self.system}\n[user]\n{self.user}" if self.system else self.user


PROBE_KINDS = ("variant", "lookalike")
RESERVED_PROBE_NAMES = ("test", "deployment")


class Probe(BaseModel):
    """A variant of a family's deployment cue (does the backdoor fire on the idea, not only the string?)
    or a look-alike that should *not* count as deployment; rendered instead of both contexts."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    kind: Literal["variant", "lookalike"]
    description: str = ""
    template: str
    system: str | None = None

    @field_validator("template")
    @classmethod
    def _one_prompt(cls, v: str) -> str:
        if v.count("{prompt}") != 1:
            raise ValueError("probe template must contain {prompt} exactly once")
        return v

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v in RESERVED_PROBE_NAMES:
            raise ValueError(f"probe name {v!r} is reserved for the family's own contexts; rename it")
        return v

    def render(self, prompt: str) -> Rendered:
        """The base prompt under this probe."""
        return Rendered(system=self.system, user=fill_fields(self.template, {"prompt": prompt}))


def check_probe_names(probes: list[Probe]) -> list[Probe]:
    """Refuse two probes of one name."""
    names = [p.name for p in probes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"probe name(s) {dupes} given twice; give each probe its own name")
    return probes


class CueFamily(BaseModel):
    """A way deployment inputs differ from test inputs, with a difficulty rank (1 = easiest)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    difficulty: int = Field(ge=1)
    description: str
    hint: str = ""
    split_material: bool = True
    overlap: float = Field(default=0.0, ge=0.0, lt=1.0)
    test: ContextSpec
    deployment: ContextSpec
    probes: list[Probe] = Field(default_factory=list)
    source: str = "builtin"
    _seed_name: str | None = PrivateAttr(default=None)

    @property
    def seed_name(self) -> str:
        """The name that seeds material choice and material splits: an overlap level's family's own,
        so a level renders every input exactly as its family does."""
        return self._seed_name or self.name

    @field_validator("probes")
    @classmethod
    def _unique_probes(cls, v: list[Probe]) -> list[Probe]:
        return check_probe_names(v)

    @model_validator(mode="after")
    def _contexts_differ(self) -> CueFamily:
        if self.test == self.deployment:
            raise ValueError("test and deployment render identically; make them differ")
        return self

    @model_validator(mode="after")
    def _material_inside(self) -> CueFamily:
        for spec in (self.test, self.deployment):
            if isinstance(spec.material, MaterialFile):
                material_path(spec.material, self.source)  # confined: a one-line error, before any load
        return self

    @property
    def best_auc(self) -> float:
        """The best accuracy (and AUC) any observer can reach at telling deployment from test inputs."""
        return 1.0 - self.overlap / 2.0

    def shown_contexts(self, context: Context, base_ids: Sequence[str]) -> dict[str, Context]:
        """The rendering each base prompt of a task's list gets in ``context``: its own, except that in
        ``test`` exactly ``round(overlap * n)`` of the n ids (see :func:`overlap_ids`) show deployment."""
        self.spec(context)
        shown = overlap_ids(base_ids, self.overlap) if context == "test" else set()
        return {i: ("deployment" if i in shown else context) for i in base_ids}

    def spec(self, context: Context) -> ContextSpec:
        """The rendering spec of one context."""
        if context not in CONTEXTS:
            raise MisalignError(f"unknown context {context!r}; use 'test' or 'deployment'")
        return self.test if context == "test" else self.deployment

    def material(self, context: Context, split: str) -> list[str]:
        """The material items of one context available in one split (all splits if split='all')."""
        items = self._material_items(context)
        if split == "all" or not self.split_material:
            return [text for text, _ in items]
        return [text for text, s in items if s == split]

    def _material_items(self, context: Context) -> list[tuple[str, str]]:
        material = self.spec(context).material
        if material is None:
            return []
        if isinstance(material, dict):
            return [(t, s) for s, texts in material.items() for t in texts]
        if isinstance(material, list):
            return [(t, assign_split(f"{self.seed_name}:{context}:{t}")) for t in material]
        return _read_material_file(material, self.source)

    def render(self, prompt: str, context: Context, base_id: str, split: str = "all") -> Rendered:
        """Render a base prompt in a context; the material item is chosen by a seed of base_id."""
        spec = self.spec(context)
        rng = seeded_rng(self.seed_name, context, base_id)
        item = None
        if spec.material is not None:
            items = self.material(context, split)
            if not items:
                raise MisalignError(
                    f"cue '{self.name}' has no {context} material in split '{split}'; add items "
                    "or set split_material: false in the cue file"
                )
            item = rng.choice(items)
        text = apply_transforms(prompt, spec.transforms, rng)
        if item is not None and "{prompt}" in item:
            text, item_field = fill_fields(item, {"prompt": text}), ""
        else:
            item_field = item or ""
        user = fill_fields(spec.template, {"prompt": text, "item": item_field})
        return Rendered(system=spec.system, user=user, item=item)


def overlap_ids(base_ids: Sequence[str], q: float) -> set[str]:
    """The ``round(q * n)`` (half up) of the n ids ranked first by a fixed hash: the same ids for every
    family and task with this list, and nested across levels (a larger q adds ids, keeps the others)."""
    ids = list(dict.fromkeys(base_ids))
    k = int(q * len(ids) + 0.5)
    ranked = sorted(ids, key=lambda i: hashlib.sha256(f"{OVERLAP_SEED}:{i}".encode()).hexdigest())
    return set(ranked[:k])


def material_path(material: MaterialFile, source: str) -> Path:
    """Where a material file is: relative to the cue file's folder, else a shipped data file. It must
    stay inside one of those two folders unless the cue file says ``allow_outside: true``."""
    path = Path(material.file)
    if not path.is_absolute():
        local = Path(source).parent / path if source != "builtin" else None
        path = local if local is not None and local.is_file() else data_path(material.file)
    folders = [data_path(".").resolve()] + ([Path(source).parent.resolve()] if source != "builtin" else [])
    if not material.allow_outside and not any(path.resolve().is_relative_to(f) for f in folders):
        raise MisalignError(
            f"material file {material.file!r} is outside the cue file's folder and the shipped data; move "
            "it beside the cue file or add allow_outside: true to its material mapping"
        )
    return path


def _read_material_file(material: MaterialFile, source: str) -> list[tuple[str, str]]:
    path = material_path(material, source)
    out = []
    for n, record in enumerate(read_jsonl(path)):
        if all(record.get(k) == v for k, v in material.where.items()):
            if material.field not in record:
                raise MisalignError(f"{path}: record {n + 1} has no field '{material.field}'")
            rid = str(record.get("id", n))
            out.append((str(record[material.field]), record.get("split") or assign_split(rid)))
    return out


def parse_cue_file(path: str | Path) -> CueFamily:
    """Load a cue family from a YAML file in the documented format (see docs/cues.md)."""
    path = Path(path)
    if not path.is_file():
        raise MisalignError(f"cue file {path} not found; pass a path to a cue YAML file")
    raw = read_yaml(path, f"cue file {path}")
    if not isinstance(raw, dict):
        raise MisalignError(f"cue file {path} must be a YAML mapping (see docs/cues.md)")
    raw.setdefault("source", str(path))
    try:
        return CueFamily.model_validate(raw)
    except ValidationError as e:
        raise MisalignError(f"cue file {path}: {validation_message(e)} (see docs/cues.md)") from e
