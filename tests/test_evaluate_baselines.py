"""Real-data baselines: random subsets, herding, k-means and k-center coresets select exactly the budget, infeasible
budgets skip."""

from __future__ import annotations

import numpy as np
import pytest

from emodistill.errors import ConfigError
from emodistill.evaluate import EvalConfig, evaluate_baselines, herding_subset, random_subset, train_reference
from emodistill.evaluate.baselines import herding_order, kcenter_order, kmeans_draw, kmeans_selection, selection_draws
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
    assert list(results) == ["random", "herding", "kmeans", "kcenter", "gaussian"]
    for name in ("random", "herding", "kmeans", "kcenter"):
        # 5 per class exceeds the 4 'sad' training utterances: skipped, not failed.
        assert list(results[name].conditions) == ["ppc2"]
        assert set(results[name].metrics) == {"uar_ppc2", "uar_ppc2_std", "acc_ppc2", "dev_uar_ppc2",
                                              "mcnemar_p_ppc2"}
        assert len(results[name].conditions["ppc2"].uars) == 2
    # The Gaussian generator is not bounded by the real class sizes.
    assert list(results["gaussian"].conditions) == ["ppc2", "ppc5"]


def test_kcenter_starts_nearest_to_the_mean_then_takes_the_farthest_point():
    x = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [-3.0, 0.0], [0.0, 4.0]])
    order = kcenter_order(x)
    assert sorted(order.tolist()) == list(range(5))
    assert order[0] == np.argmin(np.linalg.norm(x - x.mean(axis=0), axis=1)) == 1  # the mean is (0.42, 0.8)
    assert order[1] == 2  # farthest from (0.1, 0): (5, 0)
    assert order[2] in (3, 4) and order[-1] == 0  # (0, 0) is next to a chosen point: the last one taken


def test_kmeans_picks_the_utterance_nearest_each_centroid_deterministically():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = np.concatenate([c + rng.normal(0, 0.5, (20, 2)) for c in centres])
    chosen = kmeans_selection(x, 3, seed=0)
    assert len(set(chosen.tolist())) == 3
    assert sorted(int(i) // 20 for i in chosen) == [0, 1, 2]  # one utterance of each cluster
    for i in chosen:  # each is the utterance nearest its cluster's mean
        members = x[int(i) // 20 * 20:(int(i) // 20 + 1) * 20]
        assert np.allclose(x[i], members[np.argmin(np.linalg.norm(members - members.mean(axis=0), axis=1))])
    np.testing.assert_array_equal(chosen, kmeans_selection(x, 3, seed=0))
    assert kmeans_selection(x, 1, seed=5).tolist() == [int(np.argmin(np.linalg.norm(x - x.mean(axis=0), axis=1)))]
    assert len(set(kmeans_selection(x, 60, seed=0).tolist())) == 60  # every utterance: none taken twice


def test_selection_ladder_counts_seeds_and_infeasible_budgets(splits):
    train = splits["train"]
    embeddings = np.random.default_rng(1).normal(0, 1, (len(train), 8))
    counts = np.array([3, 2, 1, 4])
    for name, draw in selection_draws(train, embeddings).items():
        drawn = draw(counts, 0)
        assert np.bincount(drawn.labels, minlength=4).tolist() == [3, 2, 1, 4], name
        assert len(set(drawn.utt_ids)) == len(drawn), name
        assert draw(counts, 0).utt_ids == drawn.utt_ids, name  # deterministic given the seed
        with pytest.raises(ConfigError, match="5 real 'sad' utterances requested"):
            draw(np.array([1, 1, 1, 5]), 0)
    kmeans = kmeans_draw(train, embeddings)
    assert kmeans(np.array([8, 6, 4, 2]), 0).utt_ids != kmeans(np.array([8, 6, 4, 2]), 1).utt_ids  # seeded k-means
