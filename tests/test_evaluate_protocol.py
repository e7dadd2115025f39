"""The evaluation protocol: conditions and their counts, metrics, repeats and CIs, McNemar, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from emodistill import generator
from emodistill.errors import ConfigError, FeatureTableError
from emodistill.evaluate import (EvalConfig, EvalResult, ReferenceResult, compare_predictions, evaluate_generator,
                                 mcnemar, train_reference)
from emodistill.evaluate.protocol import conditions, evaluate_source, generator_draw, objective_keys, repeat_seed
from evaluate_helpers import micro_generator, quick_downstream, toy_splits


@pytest.fixture(scope="module")
def splits():
    return toy_splits()


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    return generator.load(micro_generator(tmp_path_factory.mktemp("gen") / "gan"))


@pytest.fixture(scope="module")
def reference(splits):
    return train_reference(splits, quick_downstream(), seed=0, progress=False)


def test_conditions_follow_budgets_and_the_real_prior(splits):
    config = EvalConfig(budgets=[5, 2], imbalanced=True, full_data=True, minority_budget=True)
    found = {c.key: c.counts.tolist() for c in conditions(config, splits["train"])}
    # Train holds 16/12/8/4 (prior 0.4/0.3/0.2/0.1, 40 in all); the minority count 4 becomes a budget.
    assert list(found) == ["ppc2", "ppc2_imbalanced", "ppc4", "ppc4_imbalanced", "ppc5", "ppc5_imbalanced",
                           "full", "full_imbalanced"]
    assert found["ppc5"] == [5, 5, 5, 5]
    assert found["ppc5_imbalanced"] == [8, 6, 4, 2]
    assert found["full"] == [10, 10, 10, 10]
    assert found["full_imbalanced"] == [16, 12, 8, 4]


def test_objective_keys_are_the_balanced_budgets_under_the_head_that_scores_the_objective():
    metrics = {"uar_ppc100": 0.5, "uar_ppc10": 0.4, "uar_ppc10_imbalanced": 0.3, "uar_full": 0.6, "dev_uar_ppc5": 0.1,
               "uar_ppc10_attentive": 0.2}
    assert objective_keys(metrics, "dev_uar_ppc10") == {10: "ppc10", 100: "ppc100"}
    assert objective_keys(metrics, None) == {10: "ppc10", 100: "ppc100"}
    assert objective_keys(metrics, "dev_uar_ppc100_attentive") == {10: "ppc10_attentive", 100: "ppc100_attentive"}


def test_generator_metrics_repeats_and_mcnemar(splits, gen, reference):
    config = EvalConfig(budgets=[2, 3], imbalanced=True, repeats=2, downstream=quick_downstream())
    result = evaluate_generator(gen, splits, config, reference, name="gan", progress=False)
    keys = ["ppc2", "ppc2_imbalanced", "ppc3", "ppc3_imbalanced"]
    assert set(result.metrics) == {f"{p}{k}{s}" for k in keys for p, s in
                                   (("uar_", ""), ("uar_", "_std"), ("acc_", ""), ("dev_uar_", ""),
                                    ("mcnemar_p_", ""))}
    assert set(result.predictions) == set(keys)
    for key in keys:
        c = result.conditions[key]
        assert len(c.uars) == 2 and all(0.0 <= u <= 1.0 for u in c.uars)
        assert len(c.dev_uars) == 2 and result.metrics[f"dev_uar_{key}"] == pytest.approx(np.mean(c.dev_uars))
        assert c.mean == pytest.approx(np.mean(c.uars)) and c.std == pytest.approx(np.std(c.uars, ddof=1))
        assert c.low <= c.mean <= c.high
        assert result.predictions[key].shape == splits["test"].labels.shape
        assert c.confusion.sum() == len(splits["test"])
        assert 0.0 < c.mcnemar_p <= 1.0
    assert result.conditions["ppc3_imbalanced"].counts == {"neu": 5, "hap": 4, "ang": 2, "sad": 1}


def test_repeats_draw_with_distinct_seeds_and_are_deterministic(splits, gen):
    seen = []
    draw = generator_draw(gen, splits["train"].label_names)

    def recording(counts, seed):
        seen.append((counts.tolist(), seed))
        return draw(counts, seed)

    config = EvalConfig(budgets=[2], imbalanced=True, repeats=3, seed=7, downstream=quick_downstream())
    first = evaluate_source("gan", recording, splits, config, progress=False)
    assert [s for _, s in seen[:3]] == [repeat_seed(7, r) for r in range(3)]
    assert len({s for _, s in seen[:3]}) == 3
    assert [c for c, _ in seen] == [[2, 2, 2, 2]] * 3 + [[3, 2, 2, 1]] * 3
    again = evaluate_source("gan", draw, splits, config, progress=False)
    assert again.metrics == first.metrics
    np.testing.assert_array_equal(again.predictions["ppc2"], first.predictions["ppc2"])


def test_compare_predictions_and_round_trip(splits, gen):
    config = EvalConfig(budgets=[2], repeats=1, downstream=quick_downstream())
    result = evaluate_generator(gen, splits, config, progress=False)
    same = compare_predictions(result, result)
    assert same["ppc2"][0].pvalue == 1.0 and not same["ppc2"][1]
    perfect = EvalResult.from_dict(result.to_dict())
    perfect.conditions["ppc2"].predictions = splits["test"].labels.copy()
    test, significant = compare_predictions(result, perfect)["ppc2"]
    wrong = int(np.sum(result.predictions["ppc2"] != splits["test"].labels))
    assert (test.b, test.c) == (0, wrong) and significant == (test.pvalue < 0.05)
    restored = EvalResult.from_dict(result.to_dict())
    assert restored.metrics == result.metrics and restored.conditions["ppc2"].model is None


def test_bad_configs_and_inputs(splits, gen):
    with pytest.raises(ValidationError):
        EvalConfig(budgets=[0])
    with pytest.raises(ValidationError):
        EvalConfig(budget=[5])  # extra fields are refused
    with pytest.raises(ConfigError, match="nothing to evaluate"):
        evaluate_generator(gen, splits, EvalConfig(budgets=[]), progress=False)
    with pytest.raises(FeatureTableError, match="missing"):
        evaluate_generator(gen, {"train": splits["train"]}, EvalConfig(), progress=False)
    renamed = {k: v.__class__(**{**v.__dict__, "label_names": ("a", "b", "c", "d")}) for k, v in splits.items()}
    with pytest.raises(ConfigError, match="labels"):
        evaluate_generator(gen, renamed, EvalConfig(), progress=False)


def test_runs_inside_no_grad(splits, gen):
    # Callers may sit in no_grad; the protocol still has to train downstreams.
    with torch.no_grad():
        result = evaluate_generator(gen, splits, EvalConfig(budgets=[1], repeats=1, downstream=quick_downstream()),
                                    progress=False)
    assert set(result.metrics) == {"uar_ppc1", "uar_ppc1_std", "acc_ppc1", "dev_uar_ppc1"}


def test_every_decoder_trains_on_the_same_draws_against_its_own_reference(splits, gen):
    decoders = ["linear", "attentive", "cnn_self_attention", "mean_std_mlp"]
    config = EvalConfig(budgets=[2], repeats=2, downstream=quick_downstream(), decoders=decoders[::-1])
    assert config.decoders == ["linear", "mean_std_mlp", "cnn_self_attention", "attentive"]  # linear first
    reference = train_reference(splits, config.downstream, progress=False, decoders=config.decoders)
    assert set(reference.decoders) == set(decoders[1:])
    assert set(reference.metrics) == {f"{m}_real_full{s}" for m in ("uar", "acc")
                                      for s in ["", *(f"_{d}" for d in decoders[1:])]}
    seen = []
    draw = generator_draw(gen, splits["train"].label_names)
    result = evaluate_source("gan", lambda counts, seed: seen.append(seed) or draw(counts, seed), splits, config,
                             reference, progress=False)
    assert len(seen) == 2  # one draw per repeat, shared by the four decoders
    assert set(result.conditions) == {"ppc2", "ppc2_mean_std_mlp", "ppc2_cnn_self_attention", "ppc2_attentive"}
    for key, condition in result.conditions.items():
        versus = reference.for_decoder(condition.decoder)
        assert versus.decoder == condition.decoder
        assert key.endswith(condition.decoder) == (condition.decoder != "linear")
        assert condition.mcnemar_p == pytest.approx(
            mcnemar(splits["test"].labels, versus.predictions, condition.predictions).pvalue)
        assert result.metrics[f"acc_{key}"] == pytest.approx(np.mean(condition.accs))
    assert ReferenceResult.from_dict(reference.to_dict()).metrics == reference.metrics
    with pytest.raises(ValidationError, match="must include 'linear'"):
        EvalConfig(decoders=["attentive"])
