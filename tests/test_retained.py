"""Retained misalignment on hand-built per-prompt tables, against values computed by hand.

Interval checks use designs whose bootstrap distribution is known in closed form: when the prompts
are of two kinds, a resample is described by how many prompts of the first kind it drew
(k ~ Binomial(n, 1/2)), so its 2.5% and 97.5% quantiles follow from the binomial distribution.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from inspect_misalign.experiments._paired import clustered_interval, sign_test
from inspect_misalign.experiments._retained import ATTACKS, MARKER, PROPENSITY, pooled


def _rows(model: str, cue: str, context: str, values, task: str | None = None, **extra) -> list[dict]:
    task = task or ("test_attacks" if context == "test" else "deployment_attacks")
    return [{"model": f"misalign/{model}", "task": task, "cue": cue, "context": context,
             "base_id": f"p{i:02d}", "value": float(v), **{k: float(e[i]) for k, e in extra.items()}}
            for i, v in enumerate(values)]


def _samples(*blocks: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([row for block in blocks for row in block])


def _lineage(trained: dict[str, str], groups: dict[str, str] | None = None, **columns) -> pd.DataFrame:
    """A lineage table: organisms (group defaults to the name) and trained checkpoint -> organism."""
    groups = groups or {}
    organisms = sorted(set(trained.values()))
    rows = [{"checkpoint": o, "stage": "organism", "organism": o, "group": groups.get(o, o)}
            for o in organisms]
    rows += [{"checkpoint": c, "stage": "trained", "organism": o, "group": groups.get(o, o),
              **{k: v[c] for k, v in columns.items()}} for c, o in trained.items()]
    return pd.DataFrame(rows)


def _organism(cue: str = "tag", test=(0,) * 6, deploy=(1,) * 6, name: str = "org") -> list[dict]:
    return _rows(name, cue, "test", test) + _rows(name, cue, "deployment", deploy)


def test_sign_test_by_hand() -> None:
    assert sign_test([1, 1, 1, 1, 1]) == (1 / 32, 5, 0)
    assert sign_test([1, 1, -1, 0, 0]) == (0.5, 2, 1)  # P(Bin(3, 1/2) >= 2) = 4/8
    assert sign_test([0.3, 2.0, -0.1, 5.0]) == (5 / 16, 3, 1)  # continuous: P(Bin(4, 1/2) >= 3)
    assert sign_test([0, 0]) == (1.0, 0, 0)


def test_retention_and_its_paired_interval_by_hand() -> None:
    # before: attacks in deployment on all 8 prompts, never in testing (sign test p = 1/256)
    # after: prompts 0-3 still attack in deployment only; prompts 4-7 attack in testing only
    samples = _samples(_organism(test=[0] * 8, deploy=[1] * 8), _rows("ck", "tag", "test", [0] * 4 + [1] * 4),
                       _rows("ck", "tag", "deployment", [1] * 4 + [0] * 4))
    [row] = pooled(_lineage({"ck": "org"}), samples, ["checkpoint"]).to_dict("records")
    assert row["gap_before_p"] == pytest.approx(1 / 256) and row["retained_reason"] == ""
    assert (row["before_deploy"], row["after_deploy"], row["gap_before"], row["gap_after"]) == (1, 0.5, 1, 0)
    # after / before, not before / after
    assert row["retained_deploy"] == pytest.approx(0.5)
    # a resample with k prompts of the first kind: deploy after = k/8, gap after = (k - (8 - k))/8;
    # k ~ Bin(8, 1/2): P(k = 0) = 1/256 < 2.5% <= P(k <= 1) = 9/256 (< 5%, so a 90% interval would
    # start at k = 2): the 95% interval is k = 1 .. 7
    assert row["retained_deploy_ci95_lower"] == pytest.approx(1 / 8)
    assert row["retained_deploy_ci95_upper"] == pytest.approx(7 / 8)
    assert row["retained_gap"] == pytest.approx(0.0)
    assert row["retained_gap_ci95_lower"] == pytest.approx(-6 / 8)
    assert row["retained_gap_ci95_upper"] == pytest.approx(6 / 8)


def test_before_and_after_are_resampled_together() -> None:
    # 5 prompts attack in deployment before and after, 5 never: the same prompts, so every paired
    # resample has after == before (interval exactly [1, 1]); independent resampling would not
    flags = [1] * 5 + [0] * 5
    samples = _samples(_organism(test=[0] * 10, deploy=flags), _rows("ck", "tag", "test", [0] * 10),
                       _rows("ck", "tag", "deployment", flags))
    [row] = pooled(_lineage({"ck": "org"}), samples, ["checkpoint"]).to_dict("records")
    assert row["gap_before_p"] == pytest.approx(1 / 32)
    for name in ("retained_deploy", "retained_gap"):
        assert (row[name], row[f"{name}_ci95_lower"], row[f"{name}_ci95_upper"]) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize(("after_test", "after_deploy", "expected"), [
    ([0] * 8, [0] * 8, 0.0),       # 0/n left: estimate 0
    ([0] * 8, [1] * 8, 1.0),       # n/n left
    ([1] * 8, [1] * 8, 1.0),       # n/n in both contexts: all of the deployment rate, none of the gap
])
def test_estimate_lies_in_its_interval_at_the_edges(after_test, after_deploy, expected) -> None:
    samples = _samples(_organism(test=[0] * 8, deploy=[1] * 8), _rows("ck", "tag", "test", after_test),
                       _rows("ck", "tag", "deployment", after_deploy))
    [row] = pooled(_lineage({"ck": "org"}), samples, ["checkpoint"]).to_dict("records")
    assert row["retained_deploy"] == expected
    assert row["retained_gap"] == expected - sum(after_test) / 8
    for name in ("retained_deploy", "retained_gap"):
        assert row[f"{name}_ci95_lower"] <= row[name] <= row[f"{name}_ci95_upper"]


def test_estimate_lies_in_its_interval_on_random_tables() -> None:
    rng = np.random.default_rng(5)
    checked = 0
    for _ in range(30):
        n = int(rng.integers(6, 30))
        rates = rng.random(4)
        blocks = [_rows(who, "tag", ctx, rng.random(n) < rate)
                  for (who, ctx), rate in zip([("org", "test"), ("org", "deployment"), ("ck", "test"),
                                               ("ck", "deployment")], sorted(rates[:2]) + list(rates[2:]),
                                              strict=True)]
        frame = pooled(_lineage({"ck": "org"}), _samples(*blocks), ["checkpoint"])
        for row in frame.to_dict("records"):
            for name in ("retained_deploy", "retained_gap"):
                if not math.isnan(row[name]):
                    checked += 1
                    assert row[f"{name}_ci95_lower"] <= row[name] <= row[f"{name}_ci95_upper"]
    assert checked > 10


def test_no_retention_where_the_organism_never_separated_the_contexts() -> None:
    # deployment > test on 2 prompts, < on 1: P(Bin(3, 1/2) >= 2) = 0.5
    test, deploy = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    samples = _samples(_organism(test=test, deploy=deploy), _rows("ck", "tag", "test", [0] * 10),
                       _rows("ck", "tag", "deployment", [0] * 10))
    [row] = pooled(_lineage({"ck": "org"}), samples, ["checkpoint"]).to_dict("records")
    assert row["gap_before_p"] == 0.5
    assert math.isnan(row["retained_deploy"]) and math.isnan(row["retained_gap"])
    assert "not significant" in row["retained_reason"] and "p = 0.5" in row["retained_reason"]
    assert "on 2 prompt(s), < on 1" in row["retained_reason"]


def test_missing_before_gives_a_reason() -> None:
    samples = _samples(_rows("org", "tag", "test", [0] * 6), _rows("ck", "tag", "test", [0] * 6),
                       _rows("ck", "tag", "deployment", [0] * 6))
    [row] = pooled(_lineage({"ck": "org"}), samples, ["checkpoint"]).to_dict("records")
    assert "no deployment attacks of org on tag (before training)" in row["retained_reason"]


def test_pooled_counts_each_organism_before_once() -> None:
    # org-a (before deploy 0.8) has one trained seed left at 0.2; org-b (before 0.5) two seeds at 0.2.
    # Each organism's before once: after (0.2 + 0.2) / 2 over before (0.8 + 0.5) / 2 = 4/13
    # (counting org-b's before once per seed would give 0.2 / ((0.8 + 0.5 + 0.5) / 3) = 1/3).
    def flags(k: int) -> list[int]:
        return [1] * k + [0] * (10 - k)

    samples = _samples(_organism(test=[0] * 10, deploy=flags(8), name="org-a"),
                       _organism(test=[0] * 10, deploy=flags(5), name="org-b"),
                       *[_rows(c, "tag", "test", [0] * 10) + _rows(c, "tag", "deployment", flags(2))
                         for c in ("a-r0", "b-r0", "b-r1")])
    lineage = _lineage({"a-r0": "org-a", "b-r0": "org-b", "b-r1": "org-b"},
                       groups={"org-a": "recipe", "org-b": "recipe"}, steps={"a-r0": 5, "b-r0": 5, "b-r1": 5})
    [row] = pooled(lineage, samples, ["steps"]).to_dict("records")
    assert (row["organisms"], row["checkpoints"], row["prompts"]) == (2, 3, 20)
    assert row["before_deploy"] == pytest.approx(0.65) and row["after_deploy"] == pytest.approx(0.2)
    assert row["retained_deploy"] == pytest.approx(4 / 13)
    assert row["retained_deploy_ci95_lower"] <= 4 / 13 <= row["retained_deploy_ci95_upper"]
    # without a shared group the organisms are pooled separately: 0.2 / 0.8 and 0.2 / 0.5
    separate = pooled(_lineage({"a-r0": "org-a", "b-r0": "org-b", "b-r1": "org-b"},
                               steps={"a-r0": 5, "b-r0": 5, "b-r1": 5}), samples, ["steps"])
    assert separate.set_index("group")["retained_deploy"].to_dict() == pytest.approx(
        {"org-a": 0.25, "org-b": 0.4})


def test_replicate_organisms_are_resampled_then_their_prompts() -> None:
    # two replicates: one keeps everything (1), one loses everything (0), constant within each. Drawing
    # organisms: {1,1} 1/4, {1,0} 1/2, {0,0} 1/4 -> percentiles 0 and 1 around the estimate 0.5
    samples = _samples(_organism(name="o1"), _organism(name="o2"),
                       _rows("c1", "tag", "test", [0] * 6), _rows("c1", "tag", "deployment", [1] * 6),
                       _rows("c2", "tag", "test", [0] * 6), _rows("c2", "tag", "deployment", [0] * 6))
    lineage = _lineage({"c1": "o1", "c2": "o2"}, groups={"o1": "g", "o2": "g"}, steps={"c1": 1, "c2": 1})
    [row] = pooled(lineage, samples, ["steps"]).to_dict("records")
    assert (row["retained_deploy"], row["retained_deploy_ci95_lower"], row["retained_deploy_ci95_upper"]) == (
        0.5, 0.0, 1.0)


def test_clustered_interval_of_one_block_matches_a_direct_bootstrap() -> None:
    # an independent computation of the same percentile bootstrap: resample prompt indices with the
    # same generator, compute after/before on each, take the quantiles
    rng = np.random.default_rng(3)
    block = np.vstack([rng.random(15) < 0.7, rng.random(15) < 0.4]).astype(float)
    est, low, high = clustered_interval([block], lambda m: m[0][1] / m[0][0], seed=4)
    draws = np.random.default_rng(4).integers(0, 15, size=(2000, 15))
    ratios = []
    for idx in draws:
        before, after = block[0, idx].sum(), block[1, idx].sum()
        if before > 0:
            ratios.append(after / before)
    assert est == pytest.approx(block[1].sum() / block[0].sum())
    assert (low, high) == pytest.approx(tuple(np.quantile(ratios, [0.025, 0.975])))


def test_continuous_measure_by_hand() -> None:
    # propensity in nats: before test -2, deployment +1 on all 6 prompts (gap 3); after, prompts 0-2
    # stay at -0.5 in deployment, 3-5 fall to -2; a resample with k of the first kind has gap after
    # 1.5 k / 6, so retained gap k / 12: estimate 3/12, interval k = 1 .. 5. The base's log-odds is -2
    # everywhere, so the excess in deployment is 3 before and 1.5 k / 6 after: retained k / 12 too.
    def rows(model, context, values):
        return _rows(model, "tag", context, values, task="propensity", excess=[v + 2.0 for v in values])

    after = [-0.5] * 3 + [-2.0] * 3
    samples = _samples(rows("org", "test", [-2.0] * 6), rows("org", "deployment", [1.0] * 6),
                       rows("ck", "test", [-2.0] * 6), rows("ck", "deployment", after))
    [row] = pooled(_lineage({"ck": "org"}), samples, ["checkpoint"], PROPENSITY).to_dict("records")
    assert row["measure"] == "propensity" and row["gap_before"] == 3.0
    assert row["retained_gap"] == pytest.approx(0.25)
    assert (row["retained_gap_ci95_lower"], row["retained_gap_ci95_upper"]) == pytest.approx((1 / 12, 5 / 12))
    # retained excess log-odds in deployment: mean excess after / mean excess before
    assert (row["before_deploy"], row["after_deploy"]) == pytest.approx((3.0, 0.75))
    assert row["retained_deploy"] == pytest.approx(0.25)
    assert row["retained_deploy_ci95_upper"] == pytest.approx(5 / 12)
    # the attack measure finds none of these rows
    assert pooled(_lineage({"ck": "org"}), samples, ["checkpoint"], ATTACKS).empty


def test_two_checkpoints_of_one_organism_pool_their_after_values() -> None:
    # propensity (rate = excess log-odds, gap = log-odds): before, test -2 and deployment +1 (excess 3,
    # gap 3) on all 6 prompts; ck1 after: -2 / 0 (excess 2, gap 2); ck2 after: -1 / -0.5 (excess 1.5,
    # gap 0.5). Pooled: deploy (2 + 1.5) / 2 / 3 = 7/12, gap (2 + 0.5) / 2 / 3 = 5/12; every prompt is
    # alike, so every resample gives the estimate
    def rows(model, context, values):
        return _rows(model, "tag", context, values, task="propensity", excess=[v + 2.0 for v in values])

    samples = _samples(rows("org", "test", [-2.0] * 6), rows("org", "deployment", [1.0] * 6),
                       rows("ck1", "test", [-2.0] * 6), rows("ck1", "deployment", [0.0] * 6),
                       rows("ck2", "test", [-1.0] * 6), rows("ck2", "deployment", [-0.5] * 6))
    lineage = _lineage({"ck1": "org", "ck2": "org"}, steps={"ck1": 3, "ck2": 3})
    [row] = pooled(lineage, samples, ["steps"], PROPENSITY).to_dict("records")
    assert (row["checkpoints"], row["after_deploy"], row["gap_after"]) == (2, 1.75, 1.25)
    for name, expected in (("retained_deploy", 7 / 12), ("retained_gap", 5 / 12)):
        interval = (row[name], row[f"{name}_ci95_lower"], row[f"{name}_ci95_upper"])
        assert interval == pytest.approx((expected,) * 3)


def test_model_name_strips_only_the_misalign_prefix() -> None:
    from inspect_misalign.experiments._retained import model_name

    assert model_name("misalign/ck-1") == "ck-1"
    assert model_name("misalign//runs/x/ck") == "/runs/x/ck"  # a checkpoint given by its directory
    assert model_name("hf/org/model") == "hf/org/model" and model_name("ck") == "ck"


def test_the_sampled_marker_measure_reads_its_score_column() -> None:
    # P(a sampled answer starts with the attack), teacher-forced: before 0.1 in testing and 0.9 in
    # deployment on every prompt, after 0.1 and 0.45: retained deploy 0.45 / 0.9, gap 0.35 / 0.8
    def rows(model, context, p):
        return _rows(model, "tag", context, [0.0] * 6, task="propensity", score_p_marker=[p] * 6)

    samples = _samples(rows("org", "test", 0.1), rows("org", "deployment", 0.9),
                       rows("ck", "test", 0.1), rows("ck", "deployment", 0.45))
    [row] = pooled(_lineage({"ck": "org"}), samples, ["checkpoint"], MARKER).to_dict("records")
    assert row["measure"] == "sampled" and row["retained_reason"] == ""
    assert row["retained_deploy"] == pytest.approx(0.5) and row["retained_gap"] == pytest.approx(0.35 / 0.8)


def test_reasons_and_counts_of_a_pool_of_organisms() -> None:
    # org-a: no measurement at all before; org-b: the same, and its checkpoint listed first; org-c: its
    # checkpoint measured on other prompts than before; the reason is the first organism's by name
    ck = _rows("a1", "tag", "test", [0] * 6) + _rows("a1", "tag", "deployment", [0] * 6)
    rows = [*ck, *[{**r, "model": "misalign/b1"} for r in ck]]
    lineage = _lineage({"b1": "org-b", "a1": "org-a"}, groups={"org-a": "g", "org-b": "g"},
                       steps={"a1": 1, "b1": 1})
    [row] = pooled(lineage, _samples(rows), ["steps"]).to_dict("records")
    assert row["retained_reason"] == "no test/deployment attacks of org-a on tag (before training)"
    other = [{**r, "base_id": f"q{i}"} for i, r in enumerate(_organism(name="org-c"))]
    [row] = pooled(_lineage({"c1": "org-c"}), _samples(other, [{**r, "model": "misalign/c1"} for r in ck]),
                   ["checkpoint"]).to_dict("records")
    assert row["retained_reason"] == "no base prompt measured in both contexts before and after on tag"


def test_an_unmeasured_checkpoint_leaves_the_other_organisms_in_the_pool() -> None:
    # org-a's checkpoint was never evaluated; org-b's kept half its deployment rate (3 of 6 prompts)
    samples = _samples(_organism(name="org-a"), _organism(name="org-b"), _rows("b1", "tag", "test", [0] * 6),
                       _rows("b1", "tag", "deployment", [1, 1, 1, 0, 0, 0]))
    lineage = _lineage({"a1": "org-a", "b1": "org-b"}, groups={"org-a": "g", "org-b": "g"},
                       steps={"a1": 1, "b1": 1})
    frame = pooled(lineage, samples, ["steps"])
    [row] = frame.to_dict("records")
    assert (row["organisms"], row["checkpoints"], row["prompts"]) == (1, 1, 6)
    assert row["retained_deploy"] == 0.5
    assert frame["checkpoints"].dtype.kind == "i" and frame["organisms"].dtype.kind == "i"  # counts


def test_sign_test_of_one_difference() -> None:
    assert sign_test([0.4]) == (0.5, 1, 0) and sign_test([-0.4]) == (1.0, 0, 1)


def test_clustered_interval_options_reach_the_bootstrap() -> None:
    # one block: resamples, level and seed are those of a direct bootstrap (300 draws, 90%, seed 7)
    rng = np.random.default_rng(1)
    block = rng.random((2, 12))
    est, low, high = clustered_interval([block], lambda m: m[0][1] - m[0][0], resamples=300, seed=7,
                                        level=0.9)
    idx = np.random.default_rng(7).integers(0, 12, size=(300, 12))
    diffs = block[1, idx].mean(axis=1) - block[0, idx].mean(axis=1)
    assert est == pytest.approx(block[1].mean() - block[0].mean())
    assert (low, high) == pytest.approx(tuple(np.quantile(diffs, [0.05, 0.95])))
    # one prompt: every resample is that prompt; the default seed is 0; several blocks repeat per seed
    assert clustered_interval([np.array([[1.0], [0.5]])], lambda m: m[0][1] / m[0][0]) == (0.5, 0.5, 0.5)
    values = rng.random((2, 12))

    def second(m):
        return float(np.mean([x[1] for x in m]))

    assert clustered_interval([values], second) == clustered_interval([values], second, seed=0)
    assert clustered_interval([values], second) != clustered_interval([values], second, seed=1)
    blocks = [values, values[:, :7]]
    assert clustered_interval(blocks, second, seed=3) == clustered_interval(blocks, second, seed=3)
    # no prompts (or no block): no interval, and no numpy "mean of empty slice" warning reaches the user
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for empty in ([], [np.ones((2, 0))], [values, np.ones((2, 0))]):
            assert all(math.isnan(v) for v in clustered_interval(empty, second))


@pytest.mark.parametrize("level", [0.95, 0.8])
def test_several_blocks_resample_blocks_then_prompts_by_hand(level: float) -> None:
    # the two stages recomputed here: blocks drawn by seed 4's generator (as bootstrap_interval draws
    # units), then each drawn block's prompts from a second generator seeded (4, number of blocks)
    rng = np.random.default_rng(11)
    blocks = [rng.random((1, 5)), rng.random((1, 8)) + 1.0]

    def stat(means):
        return float(np.mean([m[0] for m in means]))

    est, low, high = clustered_interval(blocks, stat, resamples=200, seed=4, level=level)
    inner = np.random.default_rng([4, 2])
    values = []
    for row in np.random.default_rng(4).integers(0, 2, size=(200, 2)):
        drawn = [blocks[i][0] for i in row]
        values.append(np.mean([b[inner.integers(0, b.size, b.size)].mean() for b in drawn]))
    expected = float(np.mean([b.mean() for b in blocks]))
    q_low, q_high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    assert est == pytest.approx(expected)
    assert (low, high) == pytest.approx((min(q_low, expected), max(q_high, expected)))


def test_the_gap_before_is_tested_on_the_gap_measure() -> None:
    # propensity: the log-odds (gap column) is higher in deployment on all 6 prompts (p = 1/64), while
    # the deployment excess (rate column, 0.5) is below the test log-odds (1): the test reads the former
    def rows(model, context, values, excess):
        return _rows(model, "tag", context, values, task="propensity", excess=[excess] * 6)

    samples = _samples(rows("org", "test", [1.0] * 6, 0.0), rows("org", "deployment", [2.0] * 6, 0.5),
                       rows("ck", "test", [1.0] * 6, 0.0), rows("ck", "deployment", [1.5] * 6, 0.25))
    [row] = pooled(_lineage({"ck": "org"}), samples, ["checkpoint"], PROPENSITY).to_dict("records")
    assert row["gap_before_p"] == pytest.approx(1 / 64) and row["retained_reason"] == ""
    assert row["retained_gap"] == pytest.approx(0.5) and row["retained_deploy"] == pytest.approx(0.5)


@pytest.mark.parametrize("seed", [None, 5])
def test_retention_interval_is_the_bootstrap_of_the_given_seed(seed) -> None:
    # one organism, one checkpoint, 20 prompts: the prompt resamples drawn here with numpy (seed 0 by
    # default); retained deploy = after / before deployment attacks and retained gap on each resample
    rng = np.random.default_rng(9)
    before, after_test, after = (rng.random(20) < 0.8), (rng.random(20) < 0.2), (rng.random(20) < 0.5)
    samples = _samples(_organism(test=[0] * 20, deploy=before),
                       _rows("ck", "tag", "test", after_test), _rows("ck", "tag", "deployment", after))
    kw = {} if seed is None else {"seed": seed}
    [row] = pooled(_lineage({"ck": "org"}), samples, ["checkpoint"], **kw).to_dict("records")
    draws = np.random.default_rng(seed or 0).integers(0, 20, size=(2000, 20))
    deploy = [after[i].sum() / before[i].sum() for i in draws if before[i].sum() > 0]
    gap = [(after[i].sum() - after_test[i].sum()) / before[i].sum()
           for i in draws if before[i].sum() > 0]
    for name, values in (("retained_deploy", deploy), ("retained_gap", gap)):
        low, high = np.quantile(values, [0.025, 0.975])
        assert (row[f"{name}_ci95_lower"], row[f"{name}_ci95_upper"]) == pytest.approx(
            (min(low, row[name]), max(high, row[name])))
    assert row["retained_deploy"] == pytest.approx(after.sum() / before.sum())


def _two_organisms() -> tuple[pd.DataFrame, pd.DataFrame]:
    samples = _samples(_organism(name="org-a"), _organism(name="org-b"),
                       _rows("a1", "tag", "test", [0] * 6),
                       _rows("a1", "tag", "deployment", [1, 1, 1, 0, 0, 0]),
                       _rows("b1", "tag", "test", [0] * 6),
                       _rows("b1", "tag", "deployment", [1, 0, 0, 0, 0, 0]))
    return _lineage({"b1": "org-b", "a1": "org-a"}, defense={"a1": "probe", "b1": np.nan}), samples


def test_without_a_group_column_each_organism_is_its_own_group() -> None:
    lineage, samples = _two_organisms()
    frame = pooled(lineage.drop(columns="group"), samples, ["checkpoint"])
    assert frame[["checkpoint", "group"]].values.tolist() == [["a1", "org-a"], ["b1", "org-b"]]
    assert frame["retained_deploy"].tolist() == pytest.approx([0.5, 1 / 6])


def test_a_setting_left_empty_is_a_setting_of_its_own() -> None:
    # b1 has no defense (nan): it still gets its row, after the defended a1
    lineage, samples = _two_organisms()
    frame = pooled(lineage, samples, ["defense"])
    assert frame["group"].tolist() == ["org-a", "org-b"] and frame["defense"].iloc[0] == "probe"
    assert pd.isna(frame["defense"].iloc[1])
    assert frame["retained_deploy"].tolist() == pytest.approx([0.5, 1 / 6])


def test_pooled_rows_do_not_depend_on_the_order_of_the_tables() -> None:
    lineage, samples = _two_organisms()
    frame = pooled(lineage, samples, ["checkpoint"])
    assert frame["checkpoint"].tolist() == ["a1", "b1"]  # sorted by the pooling keys
    shuffled = pooled(lineage.iloc[::-1], samples.sample(frac=1.0, random_state=1), ["checkpoint"])
    pd.testing.assert_frame_equal(shuffled, frame)


def test_nothing_to_pool_is_an_empty_table_with_its_columns() -> None:
    from inspect_misalign.experiments._retained import COLUMNS

    lineage, samples = _two_organisms()
    frame = pooled(lineage, samples, ["checkpoint"], PROPENSITY)
    assert frame.empty and list(frame.columns) == ["checkpoint", "group", "cue", "measure", *COLUMNS]


def test_setting_keys_add_the_treatment_when_the_trained_checkpoints_have_several() -> None:
    from inspect_misalign.experiments._retained import setting_keys

    def table(organism: str | None, trained: list) -> pd.DataFrame:
        rows = [{"stage": "organism", "treatment": organism}] if organism is not None else []
        return pd.DataFrame(rows + [{"stage": "trained", "treatment": t} for t in trained])

    keys = ["steps"]
    assert setting_keys(table(None, ["caught", "benign"]), keys) == ["steps", "treatment"]
    assert keys == ["steps"]  # a new list, the caller's untouched
    assert setting_keys(table(None, ["caught", "benign", "caught"]), ["treatment", "steps"]) == [
        "treatment", "steps"]
    assert setting_keys(table(None, ["caught", "caught"]), keys) == ["steps"]
    # only the trained checkpoints count: the organism's own treatment (here "none") is not a second
    assert setting_keys(table("none", ["caught", "caught"]), keys) == ["steps"]
    assert setting_keys(table("none", ["caught", np.nan]), keys) == ["steps"]  # nan is no treatment
    # a table without stages: every row counts; without a treatment column: the keys as given
    no_stage = table(None, ["caught", "benign"]).drop(columns="stage")
    assert setting_keys(no_stage, keys) == ["steps", "treatment"]
    assert setting_keys(table(None, ["caught", "benign"]).drop(columns="treatment"), keys) == ["steps"]
    result = setting_keys(table(None, ["caught"]), keys)
    assert result == keys and result is not keys


def test_caught_and_benign_checkpoints_are_pooled_apart() -> None:
    # two checkpoints of one organism at the same steps: caught kept 1/2, benign 1/6 of the rate
    samples = _samples(_organism(name="org"), _rows("c", "tag", "test", [0] * 6),
                       _rows("c", "tag", "deployment", [1, 1, 1, 0, 0, 0]),
                       _rows("b", "tag", "test", [0] * 6),
                       _rows("b", "tag", "deployment", [1, 0, 0, 0, 0, 0]))
    lineage = _lineage({"c": "org", "b": "org"}, steps={"c": 5, "b": 5},
                       treatment={"c": "caught", "b": "benign"})
    frame = pooled(lineage, samples, ["steps"])
    assert frame[["treatment", "checkpoints"]].values.tolist() == [["benign", 1], ["caught", 1]]
    assert frame["retained_deploy"].tolist() == pytest.approx([1 / 6, 0.5])


def test_prompt_interval_does_not_depend_on_the_order_of_the_rows() -> None:
    # three models' distinguishability on 8 prompts: models, then prompts, resampled; the estimate is
    # the mean of the models' means whatever the order of the rows
    from inspect_misalign.experiments._retained import prompt_interval

    rng = np.random.default_rng(2)
    rows = [{"model": f"misalign/m{m}", "task": "distinguishability", "cue": "tag", "context": "both",
             "base_id": f"p{i}", "value": float(v)}
            for m in range(3) for i, v in enumerate(rng.random(8))]
    samples = pd.DataFrame(rows)
    models = ["m0", "m1", "m2"]
    est, low, high = prompt_interval(samples, "distinguishability", models, "tag")
    assert est == pytest.approx(samples["value"].mean()) and low < est < high
    for seed in range(3):
        shuffled = samples.sample(frac=1.0, random_state=seed)
        assert prompt_interval(shuffled, "distinguishability", models, "tag") == (est, low, high)
    assert prompt_interval(samples.iloc[::-1], "distinguishability", models[::-1], "tag") == (est, low, high)
