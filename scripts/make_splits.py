"""Recompute the ``split`` field of every shipped JSONL data file.

Usage: ``python scripts/make_splits.py [DATA_DIR]``

Reads each ``*.jsonl`` file in the package data directory whose records carry a ``split``, sets
``split`` on every record with :func:`inspect_misalign.data._split.assign_split` (keyed by the record's
``id``), and writes the file back atomically (temp file in the same directory, then
``os.replace``). Record order and all other fields are preserved.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from inspect_misalign.data._split import SPLIT_ORDER, assign_split  # noqa: E402

DEFAULT_DATA_DIR = ROOT / "src" / "inspect_misalign" / "data"


def resplit_file(path: Path) -> Counter[str] | None:
    """Rewrite ``path`` with recomputed splits; return the split counts (None, and the file left
    alone, when none of its records carries a ``split``: e.g. ``instruct.jsonl``, never evaluated)."""
    records = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{lineno}: invalid JSON: {exc}") from exc
            if "id" not in record:
                raise SystemExit(f"{path}:{lineno}: record has no 'id'")
            records.append(record)
    if not any("split" in r for r in records):
        return None
    for record in records:
        record["split"] = assign_split(str(record["id"]))
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            for record in records:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return Counter(r["split"] for r in records)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    data_dir = Path(args[0]) if args else DEFAULT_DATA_DIR
    paths = sorted(data_dir.glob("*.jsonl"))
    if not paths:
        print(f"no JSONL files in {data_dir}", file=sys.stderr)
        return 1
    for path in paths:
        counts = resplit_file(path)
        if counts is None:
            print(f"{path.name}: no split field, left alone")
            continue
        summary = ", ".join(f"{k}={counts.get(k, 0)}" for k in SPLIT_ORDER)
        print(f"{path.name}: {sum(counts.values())} records ({summary})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
