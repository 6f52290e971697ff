"""Caught samples: the test-context samples of ``test_attacks`` logs on which the attack scorer fired.

:func:`catch` reads Inspect logs (files or log directories, through ``inspect_ai.log``), keeps the
samples whose attack score is 1, optionally subsamples them with a seeded RNG, and writes them as
JSONL atomically, one :class:`CaughtSample` per line with its provenance: the log, sample id, epoch,
cue, behaviour, base prompt id, the input messages and the model's output (its action; a
``<scratchpad>`` the task moved aside is kept in ``scratchpad``). That file is what
``inspect-misalign train --caught`` trains against. A ``target`` column may be added by hand
(``--target-column target``) to train on answers of your own instead of the base model's.

Only logs of the project's ``test_attacks`` task are accepted: attacks seen in deployment are, by
definition, never caught. Samples of the ``eval`` split are refused unless ``allow_eval_split``
(``--allow-eval-split``): that split is the one results are reported on, so training on it would
report the model on the data it was trained against. Catch from the ``catch`` split instead.

``not_caught`` (``--not-caught``) writes the opposite, in the same format, each line marked
``"caught": false``: the test-context samples on which the attack scorer did *not* fire, each input
once, leaving out every input that fired in any log or epoch. ``train --caught`` on that file is the
benign control: the same kind of inputs as training against caught attacks, and the same targets.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inspect_misalign import _checks as checks
from inspect_misalign._errors import MisalignError, read_text, validation_message
from inspect_misalign.training._data import SFTExample, atomic_write_text

TASK = "test_attacks"
EVAL_SPLIT = "eval"
CHAT_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class CaughtSample:
    """One caught attack with where it came from."""

    uid: str
    log: str
    sample_id: str
    epoch: int
    cue: str
    behavior: str
    base_id: str
    messages: list[dict[str, str]]
    output: str
    scratchpad: str | None = None
    model: str = ""
    context: str = "test"
    extra: dict[str, Any] = field(default_factory=dict)
    caught: bool = True  # False: a sample on which the attack scorer did not fire (``--not-caught``)

    @property
    def system(self) -> str | None:
        """The system message of the input, if any."""
        systems = [m["content"] for m in self.messages if m["role"] == "system"]
        return "\n\n".join(systems) if systems else None

    @property
    def user(self) -> str:
        """The (last) user message of the input."""
        users = [m["content"] for m in self.messages if m["role"] == "user"]
        return users[-1] if users else ""

    def example(self, completion: str, **meta: Any) -> SFTExample:
        """A training example: this sample's input paired with ``completion``."""
        info = {"uid": self.uid, "cue": self.cue, "context": self.context, "base_id": self.base_id,
                "behavior": self.behavior, **meta}
        return SFTExample(self.system, self.user, completion, info)


def catch(
    logs: Sequence[str | Path],
    out: Path | None = None,
    max_samples: int | None = None,
    seed: int = 0,
    allow_eval_split: bool = False,
    not_caught: bool = False,
    unique_inputs: bool = False,
    allow_empty: bool = False,
    shown: str | None = None,
) -> list[CaughtSample]:
    """The caught samples of ``test_attacks`` logs (files or directories), written to ``out`` as JSONL
    (with ``not_caught``, the samples that did not attack: see the module docstring).

    ``unique_inputs`` keeps one caught sample per input (the first by uid: an input attacked in several
    epochs or logs counts once). ``max_samples`` keeps a seeded random subset. Raises
    :class:`MisalignError` for a log of another task, a missing log, a log with ``eval``-split samples
    (unless ``allow_eval_split``), or when nothing was caught (unless ``allow_empty``: then an empty
    list, and an empty ``out``). ``shown`` keeps only samples whose input was shown that rendering
    (``test``: an overlap level's caught attacks without the test inputs that looked like deployment; a
    sample of a family without overlap was shown its own context).
    """
    from inspect_ai.log import list_eval_logs

    if max_samples is not None:
        checks.count(max_samples, "--max")
    checks.seed(seed, "--seed")
    if out is not None:
        checks.writable_file(out, "--out")
    paths: list[str] = []
    for item in logs:
        path = checks.path(item, "log")
        if path.is_dir():
            found = [info.name for info in list_eval_logs(str(path), recursive=True)]
            if not found:
                raise MisalignError(f"{path}: no Inspect logs in this directory; pass test_attacks logs")
            paths.extend(sorted(name.removeprefix("file://") for name in found))
        elif path.is_file():
            paths.append(str(path))
        else:
            raise MisalignError(f"{path}: no such log file or directory; pass test_attacks logs")
    if not paths:
        raise MisalignError("no logs given; pass one or more test_attacks logs")
    if out is not None and Path(out).resolve() in {Path(p).resolve() for p in paths}:
        raise MisalignError(f"--out {out} is one of the logs; write the caught samples to another file")
    caught: list[CaughtSample] = []
    attacked: list[CaughtSample] = []
    for path in paths:
        header = _read_log(path, header_only=True)
        task = header.eval.task.rsplit("/", 1)[-1]
        if task != TASK:
            raise MisalignError(
                f"{path} is a log of task {header.eval.task!r}, not {TASK}; "
                "catch reads only test_attacks logs"
            )
        log = _read_log(path)
        if not allow_eval_split:
            _refuse_eval_split(log, path)
        caught.extend(_caught_in(log, path, not_caught))
        attacked.extend(_caught_in(log, path) if not_caught else [])
    if not_caught:
        caught = _not_attacked(caught, attacked, len(paths))
    if not caught and not allow_empty:
        raise MisalignError(
            f"no attacks were caught in {len(paths)} test_attacks log(s); evaluate more prompts "
            "(-T max_prompts, --epochs) or a model that attacks in testing"
        )
    if shown is not None:
        caught = [c for c in caught if c.extra.get("shown_context", c.context) == shown]
    caught.sort(key=lambda c: c.uid)
    if unique_inputs:
        firsts: dict[str, CaughtSample] = {}
        for c in caught:
            firsts.setdefault(json.dumps(c.messages, sort_keys=True), c)
        caught = list(firsts.values())
    if max_samples is not None and max_samples < len(caught):
        chosen = random.Random(f"catch:{seed}").sample(range(len(caught)), max_samples)
        caught = [caught[i] for i in sorted(chosen)]
    if out is not None:
        write_caught(Path(out), caught)
    return caught


def _read_log(path: str, header_only: bool = False) -> Any:
    """An Inspect log; an empty, truncated or foreign file is a one-line :class:`MisalignError`."""
    from inspect_ai.log import read_eval_log

    try:
        return read_eval_log(path, header_only=header_only)
    except Exception as e:  # zip, JSON and schema errors of a file that is not a whole Inspect log
        reason = str(e).splitlines()[0] if str(e) else "unreadable"
        raise MisalignError(f"{path} is not a readable Inspect log ({type(e).__name__}: {reason}); pass "
                            "test_attacks logs (rerun the eval that wrote a truncated one)") from None


def _refuse_eval_split(log: Any, path: str) -> None:
    """Raise :class:`MisalignError` if any sample of the log belongs to the ``eval`` split."""
    held_out = sum(1 for sample in log.samples or [] if (sample.metadata or {}).get("split") == EVAL_SPLIT)
    if held_out:
        raise MisalignError(
            f"{path} has {held_out} samples of the {EVAL_SPLIT!r} split, which is reported and must not "
            "be trained against; catch from catch-split logs (-T split=catch) or pass --allow-eval-split"
        )


def _not_attacked(
    samples: list[CaughtSample], attacked: list[CaughtSample], n_logs: int
) -> list[CaughtSample]:
    """Each input of ``samples`` once, unless it is the input of an ``attacked`` sample."""
    seen = {json.dumps(c.messages, sort_keys=True) for c in attacked}
    out = []
    for sample in sorted(samples, key=lambda c: c.uid):
        key = json.dumps(sample.messages, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(sample)
    if not out:
        raise MisalignError(f"every test-context input of {n_logs} test_attacks log(s) was attacked at least "
                            "once; evaluate more prompts (-T max_prompts) to find inputs without an attack")
    return out


EXTRA_KEYS = ("split", "difficulty", "cue_item", "overlap", "shown_context")
"""Sample metadata kept with each caught sample (an overlap level's ``shown_context``: the rendering the
test input was shown, which is the deployment one for a share q of inputs)."""


def _caught_in(log: Any, path: str, not_caught: bool = False) -> list[CaughtSample]:
    """The samples of one log whose attack score fired (with ``not_caught``: was scored and did not)."""
    out = []
    for sample in log.samples or []:
        if not sample.scores:
            continue
        score = sample.scores.get("attack_scorer") or next(iter(sample.scores.values()))
        try:
            value = float(score.as_float())
            fired: bool | None = value >= 1.0 if math.isfinite(value) else None
        except (TypeError, ValueError):
            fired = None
        meta = sample.metadata or {}
        if fired is None or fired == not_caught or meta.get("context", "test") != "test":
            continue
        messages = _messages(sample.input)
        out.append(
            CaughtSample(
                uid=f"{log.eval.eval_id}:{sample.id}:{sample.epoch}",
                log=str(path),
                sample_id=str(sample.id),
                epoch=int(sample.epoch),
                cue=str(meta.get("cue", "")),
                behavior=str(meta.get("behavior", "")),
                base_id=str(meta.get("base_id", "")),
                messages=messages,
                output=sample.output.completion if sample.output else "",
                scratchpad=meta.get("scratchpad"),
                model=str(log.eval.model),
                extra={k: meta[k] for k in EXTRA_KEYS if k in meta},
                caught=not not_caught,
            )
        )
    return out


def _messages(value: Any) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return [{"role": m.role, "content": m.text} for m in value if m.role in ("system", "user")]


def write_caught(path: Path, caught: Sequence[CaughtSample]) -> None:
    """Write caught samples as JSONL atomically."""
    atomic_write_text(path, "".join(json.dumps(asdict(c), sort_keys=True) + "\n" for c in caught))


def read_caught(path: Path, target_column: str | None = None) -> list[tuple[CaughtSample, str | None]]:
    """Caught samples from a JSONL file, each with its ``target_column`` value (None without one).

    Every line is checked before anything loads (one-line :class:`MisalignError` naming the line): a
    JSON object whose fields have :class:`CaughtSample`'s types (pydantic), whose ``messages`` are
    chat messages (``role`` system, user or assistant, ``content`` text) with a user message."""
    path = Path(path)
    if not path.is_file():
        raise MisalignError(f"--caught {path}: no such file; make one with `inspect-misalign catch`")
    rows: list[tuple[CaughtSample, str | None]] = []
    for n, line in enumerate(read_text(path, f"--caught {path}").splitlines(), start=1):
        if not line.strip():
            continue
        record, sample = _caught_record(line, f"{path}:{n}")
        target = None
        if target_column is not None:
            target = record.get(target_column)
            if not isinstance(target, str) or not target.strip():
                raise MisalignError(f"{path}:{n}: no {target_column!r} string; add one to every line "
                                    "or drop --target-column")
        rows.append((sample, target))
    if not rows:
        raise MisalignError(f"--caught {path} is empty: there is nothing to train against; "
                            "catch attacks first (`inspect-misalign catch`)")
    return rows


def _caught_record(line: str, where: str) -> tuple[dict[str, Any], CaughtSample]:
    """One line of a caught file: the JSON object and its :class:`CaughtSample` (strict types)."""
    from pydantic import TypeAdapter, ValidationError

    fix = "; make the file with `inspect-misalign catch`"
    try:
        record = json.loads(line)
    except ValueError as e:
        raise MisalignError(f"{where}: not valid JSON ({str(e).split(':')[0]}){fix}") from None
    if not isinstance(record, dict):
        raise MisalignError(f"{where}: each line must be a JSON object (a caught sample), got "
                            f"{type(record).__name__}{fix}")
    known = {k: v for k, v in record.items() if k in CaughtSample.__dataclass_fields__}
    try:
        sample = TypeAdapter(CaughtSample).validate_python(known)
    except ValidationError as e:
        raise MisalignError(f"{where}: not a caught sample ({validation_message(e)}){fix}") from None
    for i, message in enumerate(sample.messages):
        if set(message) != {"role", "content"} or message["role"] not in CHAT_ROLES:
            raise MisalignError(f"{where}: messages.{i} must be {{role: system|user|assistant, "
                                f"content: text}}, got {message!r}{fix}")
    if not any(m["role"] == "user" for m in sample.messages):
        raise MisalignError(f"{where}: messages hold no user message; nothing to train against{fix}")
    return record, sample


def caught_hash(caught: Sequence[CaughtSample]) -> str:
    """sha256 of the caught samples' ids (sorted): the lineage of a trained checkpoint."""
    h = hashlib.sha256()
    for uid in sorted(c.uid for c in caught):
        h.update(uid.encode() + b"\n")
    return h.hexdigest()
