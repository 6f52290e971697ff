"""Issue 17's table of bug-shaped mutations: apply each to a copy of the tree and run the tests that name it.

Usage: ``python scripts/mutation_table.py [WORDS...]`` (only the mutations whose name contains a word)

For every mutation the source tree and the tests are copied to a temporary directory, the mutation is
applied there (the working tree is never edited), and each named test is run with pytest twice: on the
mutated copy (it must fail) and on the unmutated copy (it must pass). A line per test says ``KILLED``
or the two exit codes; the script exits 1 unless every mutation is killed by every test named for it.
docs/mutants.md lists the results.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str  # under src/inspect_misalign
    edits: tuple[tuple[str, str], ...]  # (old, new), each old found exactly once
    tests: tuple[str, ...]


MUTATIONS = [
    Mutation("train-against targets = the caught attack output instead of the base's answer",
             "training/_against.py",
             (('return [c.example(a, source="base") for c, a in zip(caught, answers, strict=True)]',
               'return [c.example(c.output, source="base") for c, a in zip(caught, answers, strict=True)]'),),
             ("tests/test_train_against.py::"
              "test_targets_are_the_base_models_own_greedy_answers_not_the_caught_outputs",)),
    Mutation("retained deployment rate inverted (before / after; sweep_table and pooled() share it)",
             "experiments/_retained.py",
             (("return _ratio(float(after), float(before))\n\n\ndef _gap",
               "return _ratio(float(before), float(after))\n\n\ndef _gap"),),
             ("tests/test_retained.py::test_retention_and_its_paired_interval_by_hand",
              "tests/test_retained.py::test_pooled_counts_each_organism_before_once",
              "tests/test_sweep_table.py::test_sweep_table_columns_by_hand")),
    Mutation("retained gap inverted (before / after)", "experiments/_retained.py",
             (("after = np.mean([(m[4::3] - m[3::3]).mean() for m in means])\n"
               "    return _ratio(float(after), float(before))",
               "after = np.mean([(m[4::3] - m[3::3]).mean() for m in means])\n"
               "    return _ratio(float(before), float(after))"),),
             ("tests/test_retained.py::test_retention_and_its_paired_interval_by_hand",
              "tests/test_sweep_table.py::test_sweep_table_columns_by_hand")),
    Mutation("retention interval computed wrongly (series resampled apart, not paired by prompt)",
             "experiments/_paired.py",
             (("lambda idx: statistic([block[:, idx].mean(axis=1)])",
               "lambda idx: statistic([np.array([row[(idx + i) % block.shape[1]].mean() "
               "for i, row in enumerate(block)])])"),),
             ("tests/test_retained.py::test_before_and_after_are_resampled_together",
              "tests/test_retained.py::test_retention_and_its_paired_interval_by_hand")),
    Mutation("check ignores 'higher is better'", "experiments/_check.py",
             (('bad = hits if m.direction == "lower" else n - hits', "bad = hits"),),
             ("tests/test_check_stats.py::test_higher_is_better_is_respected",)),
    Mutation("check fails on the tolerance alone, no significance test", "experiments/_check.py",
             (("p = worse_p_value(bad, n, _bad_counts(m), m.n, m.tolerance) if n else 1.0",
               "p = float(not (bad / n - _bad_counts(m) / m.n > m.tolerance)) if n else 1.0"),),
             ("tests/test_check_stats.py::test_a_move_beyond_the_tolerance_that_is_not_significant_passes",)),
    Mutation("check: significance alone, the tolerance ignored", "experiments/_check.py",
             (("p = worse_p_value(bad, n, _bad_counts(m), m.n, m.tolerance) if n else 1.0",
               "p = worse_p_value(bad, n, _bad_counts(m), m.n, 0.0) if n else 1.0"),),
             ("tests/test_check_stats.py::test_a_significant_move_within_the_tolerance_passes",)),
    Mutation("default leak 0.05 -> 0.5", "training/_organism.py",
             (("leak: float = setting(0.05,", "leak: float = setting(0.5,"),),
             ("tests/test_organism.py::test_default_leak_is_five_percent_of_each_cues_test_examples",)),
    Mutation("provider drops the seed when sampling", "models/_provider.py",
             (("seeded = sampling and config.seed is not None", "seeded = False"),),
             ("tests/test_models_sampling.py::test_same_seed_same_completions_whatever_the_batch",)),
    Mutation("the judge cannot read a text '100'", "scorers/_judge.py",
             (('_NUMBER = re.compile(r"\\b(100|[0-9]{1,2})\\b")',
               '_NUMBER = re.compile(r"\\b([0-9]{1,2})\\b")'),),
             ("tests/test_judge.py::test_the_text_fallback_reads_100",)),
    Mutation("Wilson bounds swapped", "scorers/_metrics.py",
             (("return max(0.0, centre - half), min(1.0, centre + half)",
               "return min(1.0, centre + half), max(0.0, centre - half)"),),
             ("tests/test_metrics.py::test_wilson_interval",)),
    Mutation("distinguishability always deployment-first (input A, target A)",
             "tasks/_distinguishability.py",
             (('a, b = (deploy, test) if order == "deploy_first" else (test, deploy)',
               "a, b = (deploy, test)"),
              ('target="A" if order == "deploy_first" else "B",', 'target="A",')),
             ("tests/test_distinguish.py::test_every_pair_in_both_orders",
              "tests/test_distinguish.py::test_position_bias_scores_exactly_chance")),
    Mutation("distinguishability: input A always the deployment text (targets still by order)",
             "tasks/_distinguishability.py",
             (('a, b = (deploy, test) if order == "deploy_first" else (test, deploy)',
               "a, b = (deploy, test)"),),
             ("tests/test_distinguish.py::test_model_that_sees_the_cue_scores_one",)),
]


def _pytest(tree: Path, test: str) -> int:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"), OMP_WAIT_POLICY="PASSIVE")
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", test]
    return subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True).returncode


def check(mutation: Mutation) -> bool:
    """Run the mutation's tests on a mutated copy (must fail) and the clean copy (must pass)."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp)
        skip = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / "src", tree / "src", ignore=skip)
        shutil.copytree(ROOT / "tests", tree / "tests", ignore=skip)
        shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
        path = tree / "src" / "inspect_misalign" / mutation.file
        clean = mutated = path.read_text(encoding="utf-8")
        for old, new in mutation.edits:
            if mutated.count(old) != 1:
                print(f"STALE      {mutation.name}: {old!r} not found once in {mutation.file}", flush=True)
                return False
            mutated = mutated.replace(old, new)
        path.write_text(mutated, encoding="utf-8")
        on_mutant = {t: _pytest(tree, t) for t in mutation.tests}
        path.write_text(clean, encoding="utf-8")
        on_clean = {t: _pytest(tree, t) for t in mutation.tests}
    killed = True
    for t in mutation.tests:
        ok = on_mutant[t] == 1 and on_clean[t] == 0
        killed &= ok
        verdict = "KILLED" if ok else f"rc={on_mutant[t]} clean_rc={on_clean[t]}"
        print(f"{verdict:10} {mutation.name} :: {t}", flush=True)
    return killed


def main(words: list[str]) -> int:
    chosen = [m for m in MUTATIONS if not words or any(w in m.name for w in words)]
    results = [check(m) for m in chosen]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
