"""Context probe: logistic regression, prompt-disjoint folds, CV AUC, and the task end to end."""

from __future__ import annotations

import numpy as np
import pytest
from inspect_ai import eval as inspect_eval
from scripted import scripted_model
from scripted_forward import forward_model, reference_forward, sees_deployment

from inspect_misalign._errors import MisalignError
from inspect_misalign.scorers._probe import (
    NO_HIDDEN_STATES,
    decode_vector,
    encode_vector,
    probe_summary,
    select_layers,
)
from inspect_misalign.scorers._probe_fit import (
    cross_validated_scores,
    fit_logistic,
    prompt_folds,
)
from inspect_misalign.tasks import context_probe


def run(task, tmp_path, model=None):
    [log] = inspect_eval(task, model=model or forward_model(sees_deployment), log_dir=str(tmp_path),
                         display="none")
    return log


def metrics(log) -> dict[str, float]:
    return {k: m.value for k, m in log.results.scores[0].metrics.items()}


def test_logistic_fit_is_the_l2_optimum() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 50)) * rng.uniform(0.1, 10, size=50)  # wide and badly scaled
    y = (x[:, 0] / x[:, 0].std() + rng.normal(size=30) > 0).astype(float)
    w, b = fit_logistic(x, y, l2=2.0)
    # optimality on standardised features: z'(p - y) + l2 w_z = 0 and sum(p - y) = 0
    scale = x.std(axis=0)
    z = (x - x.mean(axis=0)) / scale
    w_z = w * scale
    p = 1 / (1 + np.exp(-(x @ w + b)))
    assert np.abs(z.T @ (p - y) + 2.0 * w_z).max() < 1e-6 and abs((p - y).sum()) < 1e-6


def test_folds_are_prompt_disjoint() -> None:
    samples = list(context_probe(cue="tag", max_prompts=12).dataset)
    groups = [s.metadata["pair_id"] for s in samples]
    folds = prompt_folds(groups, 5, seed=1)
    for f in range(5):
        train = {g for g, k in zip(groups, folds, strict=True) if k != f}
        test = {g for g, k in zip(groups, folds, strict=True) if k == f}
        assert test and not train & test
    # both renderings of every prompt share a fold, and folds hold 2 or 3 prompts
    by_prompt = {g: {k for g2, k in zip(groups, folds, strict=True) if g2 == g} for g in groups}
    assert all(len(v) == 1 for v in by_prompt.values())
    assert sorted(np.bincount(folds) // 2) == [2, 2, 2, 3, 3]


def test_out_of_fold_scores_do_not_see_the_held_out_prompt() -> None:
    # swapping the labels of one prompt's two rows changes every probe trained on them: the scores
    # of that prompt stay exactly the same, those of prompts in other folds move
    rng = np.random.default_rng(2)
    groups = [f"p{g}" for g in range(10) for _ in (0, 1)]
    y = np.array([0, 1] * 10, dtype=float)
    x = rng.normal(size=(20, 8)) + y[:, None]
    fold = prompt_folds(groups, 5)
    base = cross_validated_scores(x, y, groups, folds=5)
    for g in range(10):
        swapped = y.copy()
        swapped[[2 * g, 2 * g + 1]] = swapped[[2 * g + 1, 2 * g]]
        scores = cross_validated_scores(x, swapped, groups, folds=5)
        same_fold = fold == fold[2 * g]
        assert np.array_equal(scores[same_fold], base[same_fold])
        assert not np.allclose(scores[~same_fold], base[~same_fold])


def test_identical_features_in_both_classes_give_half() -> None:
    rng = np.random.default_rng(3)
    per_prompt = [encode_vector(v) for v in rng.normal(size=(20, 24))]
    features = [{"0": f, "5": f} for f in per_prompt for _ in (0, 1)]
    labels = [0, 1] * 20
    prompts = [str(i) for i in range(20) for _ in (0, 1)]
    summary = probe_summary(features, labels, prompts, headline=5)
    assert summary["auc"] == summary["auc_layer_0"] == 0.5 and summary["prompts"] == 20
    assert summary["auc_ci_lower"] <= 0.5 <= summary["auc_ci_upper"]


def test_encoding_round_trip_and_layer_choice() -> None:
    v = np.array([0.1, -2.5, 1e6, 3.0])
    assert np.allclose(decode_vector(encode_vector(v)), [0.1, -2.5, 65504, 3.0], rtol=1e-3)
    assert select_layers("auto", 31, None) == ([0, 8, 15, 22, 30], 15)  # 30 layers + embeddings
    assert select_layers("0,-1", 5, None) == ([0, 2, 4], 2)
    assert select_layers("all", 4, 3) == ([0, 1, 2, 3], 3)
    with pytest.raises(MisalignError, match="out of range"):
        select_layers("7", 5, None)


def test_tag_cue_separates_and_identical_renderings_do_not(tmp_path) -> None:
    log = run(context_probe(cue="tag", max_prompts=10, layers="all"), tmp_path)
    assert log.status == "success", log.error
    m = metrics(log)
    assert m["auc"] > 0.9 and m["headline_layer"] == 1 and m["prompts"] == 10
    assert {f"auc_layer_{i}" for i in range(4)} <= set(m)
    sample = log.samples[0]
    assert set(sample.scores["probe_features"].metadata["features"]) == {"0", "1", "2", "3"}
    # the full-precision states are nowhere in the log (output, model and state events); outside the
    # score (and its event) the compact form appears once, in the state event after the solver
    others = sample.model_copy(update={"scores": None,
                                       "events": [e for e in sample.events if e.event != "score"]})
    logged = others.model_dump_json()
    assert "hidden_states_by_layer" not in logged and "prompt_mean" not in logged
    assert logged.count(sample.scores["probe_features"].metadata["features"]["0"]) == 1
    # renderings that differ only in whitespace, which the scripted model does not see
    same = tmp_path / "same.yaml"
    same.write_text("name: same\ndifficulty: 9\ndescription: d\ntest: {template: '{prompt}'}\n"
                    "deployment: {template: '{prompt} '}\n")
    log = run(context_probe(cue=str(same), max_prompts=10), tmp_path)
    assert metrics(log)["auc"] == 0.5


def test_model_without_hidden_states(tmp_path) -> None:
    # by name, as inspect eval does: the model is known when the task is built
    with pytest.raises(MisalignError) as err:
        inspect_eval("inspect_misalign/context_probe", model=scripted_model(), log_dir=str(tmp_path),
                     display="none", task_args={"cue": "tag", "max_prompts": 2})
    assert "\n" not in str(err.value) and "--model misalign/<checkpoint>" in str(err.value)
    # a Task object built before eval(): no model yet, so the first sample fails with the message
    log = run(context_probe(cue="tag", max_prompts=2), tmp_path, model=scripted_model())
    assert log.status == "error" and NO_HIDDEN_STATES in log.error.message


@pytest.mark.parametrize(
    ("args", "fragment"),
    [({"layers": "middle"}, "layers='middle'"), ({"pool": "max"}, "unknown pool"),
     ({"folds": 1}, "folds must be 2 or more"), ({"l2": 0}, "l2 must be positive"),
     ({"max_prompts": 1}, "at least 2 base prompts")],
)
def test_bad_arguments(args, fragment) -> None:
    with pytest.raises(MisalignError, match=fragment):
        context_probe(cue="tag", **args)


def test_tiny_model_sees_the_tag(tiny_model_dir, tmp_path) -> None:
    log = run(context_probe(cue="tag", max_prompts=12), tmp_path, model=f"misalign/{tiny_model_dir}")
    assert log.status == "success", log.error
    m = metrics(log)
    assert m["headline_layer"] == 1 and m["auc"] > 0.9  # 2 blocks: hidden states 0, 1, 2
    assert {"auc_layer_0", "auc_layer_2"} <= set(m)
    # the stored features are the mean-pooled states of an independent forward pass
    sample = log.samples[0]
    features = sample.scores["probe_features"].metadata["features"]
    states = reference_forward(tiny_model_dir, sample.input)[1].hidden_states
    for layer in ("0", "1", "2"):
        expected = states[int(layer)][0].mean(dim=0).numpy()
        assert np.allclose(decode_vector(features[layer]), expected, rtol=2e-3, atol=2e-3)


def test_the_line_searchs_objective_is_the_penalised_negative_log_likelihood() -> None:
    from inspect_misalign.scorers._probe_fit import _loss

    # two rows, scores f = a @ theta = 0.5 and 1.0, labels 1 and 0, penalty 2 on the one weight:
    # log(1 + e^0.5) - 0.5 + log(1 + e^1) + 0.5 * 2 * 0.5^2
    a, y, theta, penalty = np.array([[1.0], [2.0]]), np.array([1.0, 0.0]), np.array([0.5]), np.array([2.0])
    expected = np.log1p(np.exp(0.5)) - 0.5 + np.log1p(np.exp(1.0)) + 0.25
    assert _loss(a, y, theta, penalty) == pytest.approx(expected, rel=1e-12)


def test_probe_auc_needs_two_prompts_and_two_classes() -> None:
    from inspect_misalign.scorers._probe_fit import probe_auc

    # deployment rows sit at +1, test rows at -1 (plus noise): any probe fit on one prompt separates another
    rng = np.random.default_rng(4)
    y = np.array([1.0, 0.0, 1.0, 0.0])
    x = (2 * y - 1)[:, None] + 0.1 * rng.normal(size=(4, 3))
    est, low, high = probe_auc(x, y, ["p0", "p0", "p1", "p1"])
    assert (est, low, high) == (1.0, 1.0, 1.0)  # two prompts are enough; every resample separates too
    assert np.isnan(probe_auc(x[:2], y[:2], ["p0", "p0"])).all()  # one prompt
    assert np.isnan(probe_auc(x, np.ones(4), ["p0", "p0", "p1", "p1"])).all()  # one class


def test_probe_auc_default_seed_is_zero() -> None:
    from inspect_misalign.scorers._probe_fit import probe_auc

    rng = np.random.default_rng(6)
    groups = [f"p{g}" for g in range(12) for _ in (0, 1)]
    y = np.array([0.0, 1.0] * 12)
    x = rng.normal(size=(24, 4)) + 0.5 * y[:, None]
    assert probe_auc(x, y, groups) == probe_auc(x, y, groups, seed=0) != probe_auc(x, y, groups, seed=1)


def test_probe_auc_is_the_bootstrapped_auc_of_out_of_fold_probes_fit_here() -> None:
    from inspect_misalign.scorers._metrics import clustered_interval, roc_auc
    from inspect_misalign.scorers._probe_fit import probe_auc

    rng = np.random.default_rng(8)
    groups = [f"p{g}" for g in range(9) for _ in (0, 1)]
    y = np.array([0.0, 1.0] * 9)
    x = rng.normal(size=(18, 5)) + 0.4 * y[:, None]
    # by hand: 3 prompt-disjoint folds (seed 2), a probe with l2 = 5 fit on the other folds scores each
    fold = prompt_folds(groups, 3, seed=2)
    scores = np.empty(18)
    for f in range(3):
        w, b = fit_logistic(x[fold != f], y[fold != f], l2=5.0)
        scores[fold == f] = x[fold == f] @ w + b
    assert np.array_equal(cross_validated_scores(x, y, groups, folds=3, l2=5.0, seed=2), scores)
    expected = clustered_interval(groups, lambda rows: roc_auc(y[rows], scores[rows]), seed=2)
    assert probe_auc(x, y, groups, folds=3, l2=5.0, seed=2) == expected


def test_constant_features_get_no_weight() -> None:
    # a constant column changes nothing: weight 0, the other weights and intercept as without it
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20, 3))
    y = (x[:, 0] + rng.normal(size=20) > 0).astype(float)
    w, b = fit_logistic(x, y)
    w_c, b_c = fit_logistic(np.c_[x[:, :1], np.full(20, 7.0), x[:, 1:]], y)
    assert abs(w_c[1]) < 1e-12
    assert np.allclose(np.r_[w_c[:1], w_c[2:]], w, atol=1e-9) and b_c == pytest.approx(b, abs=1e-9)


@pytest.mark.parametrize("width", [0, 2], ids=["no_features", "all_constant"])
def test_without_usable_features_the_probe_is_the_intercept_alone(width: int) -> None:
    # the unpenalised intercept alone: the log-odds of the base rate, 3 positives in 8 rows
    y = np.array([1.0, 1.0, 1.0, 0, 0, 0, 0, 0])
    w, b = fit_logistic(np.ones((8, width)), y)
    assert w.shape == (width,) and not w.any()
    assert b == pytest.approx(np.log(3 / 5), abs=1e-9)


def test_one_feature_fit_is_the_l2_optimum() -> None:
    # one standardised feature z and intercept c: the gradient z'(p - y) + l2 w_z and sum(p - y) vanish
    rng = np.random.default_rng(5)
    x = rng.normal(2.0, 3.0, size=(25, 1))
    y = (x[:, 0] + rng.normal(0, 3.0, size=25) > 2.0).astype(float)
    w, b = fit_logistic(x, y, l2=0.5)
    z = (x[:, 0] - x[:, 0].mean()) / x[:, 0].std()
    p = 1 / (1 + np.exp(-(x[:, 0] * w[0] + b)))
    assert abs(z @ (p - y) + 0.5 * w[0] * x[:, 0].std()) < 1e-7 and abs((p - y).sum()) < 1e-7
    assert w[0] > 0


def test_float32_hidden_states_are_fit_in_float64() -> None:
    # hidden states arrive as float32; the fit is done in float64, so it equals the fit of the same
    # values widened first (a float32 fit differs in the 7th digit)
    rng = np.random.default_rng(9)
    x = rng.normal(size=(30, 6)).astype(np.float32)
    y = (x[:, 0] + rng.normal(size=30) > 0).astype(float)
    w32, b32 = fit_logistic(x, y)
    w64, b64 = fit_logistic(x.astype(np.float64), y)
    assert w32.dtype == np.float64 and np.array_equal(w32, w64) and b32 == b64
