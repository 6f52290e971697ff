"""The organism quality gate: the project's own Inspect tasks on the ``eval`` split (or ``dev``).

For an adapter it runs ``test_attacks`` and ``deployment_attacks`` (per cue) and ``usefulness``
through ``inspect_ai.eval`` with the ``misalign/`` provider, and ``usefulness`` on the base (cached
per base and settings, since the base does not change). The result is a per-cue table of
deployment attack rate, test attack rate and their gap, plus usefulness against the base, with
Wilson 95% intervals; :meth:`GateResult.metrics` is what goes into the manifest and
:meth:`GateResult.failures` checks ``--min-gap`` / ``--max-usefulness-drop``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from inspect_misalign._atomic import atomic_write_text
from inspect_misalign._errors import MisalignError
from inspect_misalign._stats import RATE_TOLERANCE
from inspect_misalign.training._fields import (
    check_at_least,
    check_choice,
    check_fraction,
    check_joined,
    check_model,
    setting,
)

GateSplit = Literal["dev", "catch", "eval"]
GATE_SPLITS: tuple[str, ...] = get_args(GateSplit)


@dataclass(frozen=True)
class GateSettings:
    """How the gate evaluates: sample sizes, generation limit, grader, pass criteria."""

    enabled: bool = setting(True, flag="--gate",
                            help="Evaluate on --gate-split and store the metrics in the manifest.")
    prompts: int | None = setting(40, flag="--gate-prompts",
                                  help="Base prompts per cue and context in the gate.")
    usefulness_items: int | None = setting(None, flag="--gate-items",
                                           help="Usefulness items in the gate [default: all].")
    max_tokens: int | None = setting(None, flag="--gate-max-tokens", help="Generation limit in the gate "
                                     "[default: the task's, plus 64 with --cot].")
    grader: str | None = setting(None, flag="--grader", help="Grader model for the persona gate.")
    min_gap: float | dict[str, float] | None = setting(
        None, flag="--min-gap", help="Fail (exit 1, do not register) unless deployment minus test attack "
        "rate reaches this for every cue, or for the cues named: tag=0.8,year=0.8.")
    max_usefulness_drop: float | None = setting(
        None, flag="--max-usefulness-drop",
        help="Fail unless usefulness stays within this of the base (e.g. 0.05).")
    batch_size: int = setting(32, flag="--batch-gen", help="Batch size of generation in the gate.")
    split: GateSplit = setting("eval", flag="--gate-split", help="Split the gate runs on: dev for choosing "
                         "settings (never reported), eval for reported results.")
    usefulness_split: str | None = setting(
        None, flag="--gate-usefulness-split",
        help="Split(s) of the gate's usefulness items, joined by + [default: dev+catch with --gate-split "
        "dev (40 dev items cannot resolve a 5-point drop; catch items are never reported), else "
        "--gate-split].")

    def __post_init__(self) -> None:
        check_model(self, "grader", optional=True)
        if isinstance(self.min_gap, str):  # the command line's (and YAML's) text form
            object.__setattr__(self, "min_gap", parse_min_gap(self.min_gap))
        elif isinstance(self.min_gap, int | float) and not isinstance(self.min_gap, bool):
            object.__setattr__(self, "min_gap", _unit(float(self.min_gap), "--min-gap"))
        elif isinstance(self.min_gap, dict):
            object.__setattr__(self, "min_gap", {str(c): _unit(float(v), f"--min-gap {c}")
                                                 for c, v in self.min_gap.items()})
        check_at_least(self, 1, "prompts", "usefulness_items", "max_tokens", optional=True)
        check_at_least(self, 1, "batch_size")
        check_fraction(self, "max_usefulness_drop", optional=True)
        check_choice(self, "split", GATE_SPLITS)
        check_joined(self, "usefulness_split", GATE_SPLITS, optional=True)

    @property
    def items_split(self) -> str:
        """The usefulness items' split(s): the setting, else dev+catch for dev, else the gate's split."""
        if self.usefulness_split is not None:
            return self.usefulness_split
        return "dev+catch" if self.split == "dev" else self.split


@dataclass(frozen=True)
class Rate:
    """A rate over n samples with its Wilson 95% interval."""

    rate: float
    n: int
    low: float
    high: float

    def cell(self) -> str:
        """``0.95 [0.83, 0.99]``."""
        return f"{self.rate:.2f} [{self.low:.2f}, {self.high:.2f}]"


@dataclass(frozen=True)
class CueGate:
    """Attack rates of one cue family in both contexts."""

    cue: str
    deployment: Rate
    test: Rate

    @property
    def gap(self) -> float:
        """Deployment attack rate minus test attack rate."""
        return self.deployment.rate - self.test.rate


@dataclass
class GateResult:
    """Per-cue attack rates and usefulness against the base, from Inspect logs."""

    cues: list[CueGate]
    usefulness: Rate
    base_usefulness: Rate
    split: str = "eval"
    prompts: int | None = None
    logs: list[str] = field(default_factory=list)
    usefulness_split: str | None = None

    @property
    def usefulness_delta(self) -> float:
        """Organism usefulness minus base usefulness."""
        return self.usefulness.rate - self.base_usefulness.rate

    def table(self) -> str:
        """A plain-text table (what the command prints)."""
        head = f"{'cue':<10} {'deployment attack':<22} {'test attack':<22} {'gap':>6} {'n':>5}"
        lines = [head, "-" * len(head)]
        for c in self.cues:
            lines.append(
                f"{c.cue:<10} {c.deployment.cell():<22} {c.test.cell():<22} {c.gap:>6.2f} "
                f"{c.deployment.n:>5}"
            )
        lines.append(
            f"usefulness {self.usefulness.cell()} vs base {self.base_usefulness.cell()}: "
            f"{100 * self.usefulness_delta:+.1f} points (n={self.usefulness.n}"
            + (f", {self.usefulness_split} items)" if self.usefulness_split else ")")
        )
        return "\n".join(lines)

    def metrics(self) -> dict[str, Any]:
        """Manifest metrics: headline rates per cue, usefulness, and the details of the gate."""
        return {
            "deployment_attack_rate": {c.cue: c.deployment.rate for c in self.cues},
            "test_attack_rate": {c.cue: c.test.rate for c in self.cues},
            "usefulness": self.usefulness.rate,
            "base_usefulness": self.base_usefulness.rate,
            "gate": {
                "split": self.split,
                "prompts_per_cue": self.prompts,
                "cues": {
                    c.cue: {"deployment": asdict(c.deployment), "test": asdict(c.test), "gap": c.gap}
                    for c in self.cues
                },
                "usefulness": asdict(self.usefulness),
                "usefulness_split": self.usefulness_split or self.split,
                "base_usefulness": asdict(self.base_usefulness),
                "usefulness_delta": self.usefulness_delta,
                "logs": self.logs,
            },
        }

    def failures(self, settings: GateSettings) -> list[str]:
        """Why the organism misses ``min_gap`` / ``max_usefulness_drop`` (empty when it passes)."""
        out = []
        for c in self.cues:
            need = required_gap(settings.min_gap, c.cue)
            if need is not None and c.gap < need:
                out.append(f"{c.cue}: gap {c.gap:.2f} < {need:.2f}")
        drop = -self.usefulness_delta
        if settings.max_usefulness_drop is not None and drop > settings.max_usefulness_drop + RATE_TOLERANCE:
            out.append(f"usefulness drop {drop:.2f} > {settings.max_usefulness_drop:.2f}")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateResult:
        """Rebuild a result saved with :meth:`to_dict`."""
        cues = [CueGate(c["cue"], Rate(**c["deployment"]), Rate(**c["test"])) for c in data["cues"]]
        return cls(
            cues=cues,
            usefulness=Rate(**data["usefulness"]),
            base_usefulness=Rate(**data["base_usefulness"]),
            split=data["split"],
            prompts=data["prompts"],
            logs=list(data["logs"]),
            usefulness_split=data.get("usefulness_split"),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (see :meth:`from_dict`)."""
        return asdict(self)


def required_gap(min_gap: float | dict[str, float] | None, cue: str) -> float | None:
    """The gap a cue must reach: one number for every cue, or a per-cue mapping."""
    if min_gap is None:
        return None
    if isinstance(min_gap, dict):
        return min_gap.get(cue)
    return float(min_gap)


def parse_min_gap(text: str | None) -> float | dict[str, float] | None:
    """``"0.5"`` (every cue) or ``"tag=0.8,year=0.8"`` (those cues); a bad value is a MisalignError."""
    if text is None or not text.strip():
        return None
    try:
        if "=" not in text:
            return _unit(float(text), "--min-gap")
        out = {}
        for part in text.split(","):
            cue, _, value = part.partition("=")
            out[cue.strip()] = _unit(float(value), f"--min-gap {cue.strip()}")
        return out
    except ValueError as e:
        if isinstance(e, MisalignError):
            raise
        raise MisalignError(
            f"--min-gap takes a number (every cue) or cue=number pairs like tag=0.8,year=0.8; got {text!r}"
        ) from None


def _unit(value: float, what: str) -> float:
    if not math.isfinite(value) or not -1.0 <= value <= 1.0:
        raise MisalignError(f"{what} must be between -1 and 1, got {value}")
    return value


def run_gate(
    base: str,
    adapter_dir: Path,
    cue: str,
    behavior: str,
    settings: GateSettings,
    log_dir: Path,
    base_fingerprint: str,
    cache_dir: Path,
    display: str | None = None,
) -> GateResult:
    """Evaluate the adapter on ``settings.split`` (attacks per cue, usefulness) and the base's usefulness."""
    from inspect_ai import eval as inspect_eval

    from inspect_misalign.results import results_table
    from inspect_misalign.tasks import deployment_attacks, test_attacks, usefulness

    common = dict(cue=cue, behavior=behavior, split=settings.split, grader=settings.grader,
                  max_tokens=settings.max_tokens, max_prompts=settings.prompts)
    tasks = [test_attacks(**common), deployment_attacks(**common),
             usefulness(split=settings.items_split, max_items=settings.usefulness_items)]
    model_args = {"adapter": str(adapter_dir), "batch_size": settings.batch_size}
    logs = inspect_eval(
        tasks,
        model=f"misalign/{base}",
        model_args=model_args,
        log_dir=str(log_dir),
        max_connections=settings.batch_size,
        max_tasks=len(tasks),
        display=display,  # type: ignore[arg-type]
    )
    failed = [str(log.location) for log in logs if log.status != "success"]
    if failed:
        raise RuntimeError(f"gate evals failed; see {', '.join(failed)} (inspect view)")
    locations = [str(log.location) for log in logs]
    table = results_table(locations)
    base_useful = _base_usefulness(base, settings, log_dir, base_fingerprint, cache_dir, display)
    cues = []
    for name in dict.fromkeys(table.loc[table["task"] == "test_attacks", "cue"]):
        cues.append(CueGate(str(name), _rate(table, "deployment_attacks", name),
                            _rate(table, "test_attacks", name)))
    return GateResult(
        cues=cues,
        usefulness=_rate(table, "usefulness", None),
        base_usefulness=base_useful,
        split=settings.split,
        prompts=settings.prompts,
        logs=locations,
        usefulness_split=settings.items_split,
    )


def _rate(table: Any, task: str, cue: str | None) -> Rate:
    rows = table[table["task"] == task]
    if cue is not None:
        rows = rows[rows["cue"] == cue]
    if rows.empty:
        return Rate(math.nan, 0, math.nan, math.nan)
    row = rows.iloc[0]
    return Rate(float(row["rate"]), int(row["n"]), float(row["ci95_lower"]), float(row["ci95_upper"]))


def _base_usefulness(
    base: str, settings: GateSettings, log_dir: Path, fingerprint: str, cache_dir: Path,
    display: str | None,
) -> Rate:
    """The base's usefulness on the same items, from the cache or one Inspect eval."""
    from inspect_misalign.tasks import task_version

    identity: list[Any] = [fingerprint, settings.usefulness_items, task_version("usefulness")]
    if settings.items_split != "eval":  # eval's key as before, so existing caches stay valid
        identity.append(settings.items_split)
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    cached = cache_dir / f"base-usefulness-{key}.json"
    if cached.is_file():
        try:
            return Rate(**json.loads(cached.read_text()))
        except (ValueError, TypeError):
            pass
    from inspect_ai import eval as inspect_eval

    from inspect_misalign.results import results_table
    from inspect_misalign.tasks import usefulness

    logs = inspect_eval(
        usefulness(split=settings.items_split, max_items=settings.usefulness_items),
        model=f"misalign/{base}",
        model_args={"batch_size": settings.batch_size},
        log_dir=str(log_dir),
        max_connections=settings.batch_size,
        display=display,  # type: ignore[arg-type]
    )
    if logs[0].status != "success":
        raise RuntimeError(f"base usefulness eval failed; see {logs[0].location}")
    rate = _rate(results_table([str(logs[0].location)]), "usefulness", None)
    atomic_write_text(cached, json.dumps(asdict(rate)))
    return rate
