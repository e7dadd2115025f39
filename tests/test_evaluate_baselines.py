"""Real-data baselines: random subsets and herding coresets select exactly the budget, infeasible budgets skip."""

from __future__ import annotations

import numpy as np
import pytest

from emodistill.errors import ConfigError
from emodistill.evaluate import EvalConfig, evaluate_baselines, herding_subset, random_subset, train_reference
from emodistill.evaluate.baselines import herding_order
from evaluate_helpers import quick_downstream, toy_splits


@pytest.fixture(scope="module")
def splits():
    return toy_splits()


def test_random_subset_takes_exactly_the_counts_without_repeats(splits):
    train = splits["train"]
    index = random_subset(train, np.array([3, 2, 1, 4]), seed=0)
    assert np.bincount(train.labels[index], minlength=4).tolist() == [3, 2, 1, 4]
    assert len(set(index.tolist())) == len(index)
    np.testing.assert_array_equal(index, random_subset(train, np.array([3, 2, 1, 4]), seed=0))
    assert not np.array_equal(index, random_subset(train, np.array([3, 2, 1, 4]), seed=1))


def test_a_real_subset_cannot_exceed_the_real_class(splits):
    with pytest.raises(ConfigError, match="5 real 'sad' utterances requested but the training split holds 4"):
        random_subset(splits["train"], np.array([1, 1, 1, 5]), seed=0)


def test_herding_starts_nearest_to_the_mean_and_tracks_it():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (30, 5))
    order = herding_order(x)
    assert sorted(order.tolist()) == list(range(30))
    assert order[0] == np.argmin(np.linalg.norm(x - x.mean(axis=0), axis=1))
    # Herding keeps the running mean closer to the mean than a random pick of the same size.
    herded = np.linalg.norm(x[order[:6]].mean(axis=0) - x.mean(axis=0))
    assert herded < np.linalg.norm(x[:6].mean(axis=0) - x.mean(axis=0))


def test_herding_subset_counts_per_class(splits):
    train = splits["train"]
    embeddings = np.random.default_rng(1).normal(0, 1, (len(train), 8))
    index = herding_subset(train, embeddings, np.array([2, 2, 2, 2]))
    assert np.bincount(train.labels[index], minlength=4).tolist() == [2, 2, 2, 2]
    sad = np.flatnonzero(train.labels == 3)
    nearest = sad[np.argmin(np.linalg.norm(embeddings[sad] - embeddings[sad].mean(axis=0), axis=1))]
    assert nearest in index[train.labels[index] == 3]


def test_baselines_share_the_protocol_and_skip_infeasible_budgets(splits):
    config = EvalConfig(budgets=[2, 5], repeats=2, downstream=quick_downstream())
    reference = train_reference(splits, config.downstream, progress=False)
    results = {r.name: r for r in evaluate_baselines(splits, config, reference, progress=False)}
    assert set(results) == {"random subset", "herding", "gaussian"}
    for name in ("random subset", "herding"):
        # 5 per class exceeds the 4 'sad' training utterances: skipped, not failed.
        assert list(results[name].conditions) == ["ppc2"]
        assert set(results[name].metrics) == {"uar_ppc2", "uar_ppc2_std", "dev_uar_ppc2", "mcnemar_p_ppc2"}
        assert len(results[name].conditions["ppc2"].uars) == 2
    # The Gaussian generator is not bounded by the real class sizes.
    assert list(results["gaussian"].conditions) == ["ppc2", "ppc5"]
