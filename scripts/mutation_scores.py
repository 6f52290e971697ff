"""Print docs/mutants.md's score table from mutmut's verdicts (``mutants/**/*.meta``).

Run from the repository root after ``mutmut run``. A mutant named (in backticks, without the
``inspect_misalign.`` package path) in docs/mutants.md's "Equivalent survivors" section counts as
equivalent when it survived; every other survivor is listed as not yet read. Score = killed / (run -
equivalent), a timeout counting as killed (mutmut's rule).
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

STATUS = {1: "killed", 3: "killed", 36: "killed", 24: "killed", -24: "killed", 152: "killed", 255: "killed",
          0: "survived", 5: "no tests", 33: "no tests", None: "not run"}


def short(key: str) -> str:
    """``inspect_misalign.experiments._check.x_check__mutmut_51`` -> ``_check.x_check__mutmut_51``."""
    module, _, name = key.rpartition(".")
    return f"{module.rpartition('.')[2]}.{name}"


def equivalents(doc: Path) -> set[str]:
    """The mutants named in the doc's "Equivalent survivors" section."""
    text = doc.read_text()
    section = text.split("## Equivalent survivors", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`(_[\w]+\.x[\wǁ]+__mutmut_\d+)`", section))


def main() -> int:
    """Print the table; exit 1 when a survivor is neither equivalent nor killed."""
    equivalent = equivalents(Path("docs/mutants.md"))
    unread = []
    print("| module | mutants | run | killed | equivalent | survived, not equivalent | no tests | not run "
          "| killed / (run − equivalent) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for meta in sorted(Path("mutants/src").rglob("*.py.meta")):
        verdicts = json.loads(meta.read_text())["exit_code_by_key"]
        if not verdicts:
            continue
        counts: Counter[str] = Counter()
        for key, code in verdicts.items():
            status = STATUS.get(code, "suspicious")
            if status == "survived" and short(key) in equivalent:
                status = "equivalent"
            elif status == "survived":
                unread.append(key)
            counts[status] += 1
        run = counts["killed"] + counts["survived"] + counts["equivalent"] + counts["suspicious"]
        judged = run - counts["equivalent"]
        score = f"{100 * counts['killed'] / judged:.1f}%" if judged else "-"
        module = meta.relative_to("mutants/src/inspect_misalign").with_suffix("").with_suffix("")
        module = ".".join(module.parts)
        print(f"| `{module}` | {len(verdicts)} | {run} | {counts['killed']} | {counts['equivalent']} | "
              f"{counts['survived']} | {counts['no tests']} | {counts['not run']} | {score} |")
    for key in unread:
        print(f"survived, not listed as equivalent: {key}", file=sys.stderr)
    return 1 if unread else 0


if __name__ == "__main__":
    sys.exit(main())
