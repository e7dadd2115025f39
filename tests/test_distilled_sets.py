"""Distilled sets: every method gives the counts asked for, deterministically given a seed, with its provenance in
the written table's metadata; the pickers match or cover what they should."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emodistill import generator
from emodistill.distilled import (MatchConfig, SetSpec, cover_pick, distilled_set, generator_digest, herding_pick,
                                  moments_pick, write_distilled_set)
from emodistill.distilled.sets import embedding_model
from emodistill.errors import ConfigError
from emodistill.features.store import read_table
from evaluate_helpers import micro_generator, toy_splits

METHODS = ["iid", "herding", "cover", "moments", "dm"]
QUICK_MATCH = MatchConfig(steps=3, real_batch=8)


@pytest.fixture(scope="module")
def splits():
    return toy_splits()


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    return generator.load(micro_generator(tmp_path_factory.mktemp("gen") / "gan"))


@pytest.fixture(scope="module")
def embedding(splits):
    return embedding_model(splits["train"], splits["dev"], seed=0)


def test_herding_tracks_the_target_and_cover_and_moments_pick_what_they_should():
    rng = np.random.default_rng(0)
    candidates = rng.normal(0, 1, (200, 3))
    target = np.array([0.5, 0.0, -0.5])
    picked = herding_pick(candidates, target, 8)
    assert len(set(picked.tolist())) == 8
    assert np.linalg.norm(candidates[picked].mean(axis=0) - target) < np.linalg.norm(candidates[:8].mean(0) - target)
    real = np.concatenate([rng.normal(-5, 0.1, (50, 3)), rng.normal(5, 0.1, (50, 3))])
    two = cover_pick(np.concatenate([real[:3], real[-3:]]), real, 2)
    assert sorted(int(i) // 3 for i in two) == [0, 1]  # one candidate in each real cluster
    # k = 1: the candidate nearest all of them on average, here the one between the clusters.
    assert cover_pick(np.concatenate([real[:3], [[0.0, 0.0, 0.0]]]), real, 1).tolist() == [3]
    spread = moments_pick(np.concatenate([real, [[0.0, 0.0, 0.0]] * 5]), real, 2)
    assert {int(i) < 50 for i in spread} == {True, False}  # the second moment asks for both clusters


@pytest.mark.parametrize("method", METHODS)
def test_each_method_gives_the_counts_deterministically(method, splits, gen, embedding):
    spec = SetSpec(method=method, candidates=4, seed=3, match=QUICK_MATCH)
    fs = distilled_set(gen, splits["train"], {"neu": 2, "hap": 1, "ang": 0, "sad": 3}, spec, embedding)
    assert np.bincount(fs.labels, minlength=4).tolist() == [2, 1, 0, 3]
    assert set(fs.speakers) == {"synthetic"} and fs.dim == splits["train"].dim
    again = distilled_set(gen, splits["train"], {"neu": 2, "hap": 1, "ang": 0, "sad": 3}, spec, embedding)
    np.testing.assert_array_equal(again.frames, fs.frames)
    other = distilled_set(gen, splits["train"], {"neu": 2, "hap": 1, "ang": 0, "sad": 3},
                          spec.model_copy(update={"seed": 4}), embedding)
    assert not np.array_equal(other.frames, fs.frames)


def test_a_written_set_records_its_provenance(splits, gen, embedding, tmp_path):
    spec = SetSpec(method="herding", candidates=5, seed=1)
    path = write_distilled_set(gen, splits["train"], 3, spec, tmp_path / "set.arrow", embedding)
    table = read_table(path)
    assert table.num_rows == 12 and table.column("speaker").unique().to_pylist() == ["synthetic"]
    recorded = json.loads(table.schema.metadata[b"emodistill"])
    provenance = recorded["provenance"]
    assert provenance == {"method": "herding", "ppc": 3, "candidates": 5, "seed": 1, "match": None,
                          "generator": generator_digest(gen), "features": gen.config.get("features"),
                          "data": None}
    assert recorded["labels"] == list(gen.label_names) and recorded["split"] == "synthetic"
    assert len(generator_digest(gen)) == 16


def test_methods_that_match_real_data_need_its_embedding(splits, gen):
    with pytest.raises(ConfigError, match="method 'cover' needs a downstream trained on the real data"):
        distilled_set(gen, splits["train"], 2, SetSpec(method="cover"))
    with pytest.raises(ConfigError, match="candidates"):
        distilled_set(gen, splits["train"], 100_000, SetSpec(method="herding", candidates=1000), object())


def test_evaluate_scores_distilled_sets_and_the_gaussian_under_the_same_selection(tmp_path, capsys):
    from emodistill.cli.main import main
    from evaluate_helpers import write_feature_dir

    features = write_feature_dir(tmp_path / "features")
    gan = micro_generator(tmp_path / "gan")
    code = main(["evaluate", "--generator", f"GAN={gan}", "--features", str(features), "--budgets", "1", "2",
                 "--repeats", "2", "--downstream-steps", "4", "--device", "cpu", "--select", "moments",
                 "--candidates", "3", "--out", str(tmp_path / "eval")])
    assert code == 0
    report = json.loads((tmp_path / "eval" / "results.json").read_text())
    names = [s["name"] for s in report["sources"]]
    assert names == ["random", "herding", "kmeans", "kcenter", "gaussian", "gaussian-moments", "GAN (moments x3)"]
    assert report["config"]["select"]["method"] == "moments" and report["config"]["select"]["candidates"] == 3
    assert "| GAN (moments x3) (generator) |" in capsys.readouterr().out



def test_evaluate_in_the_soft_label_regime_trains_every_source_on_the_references_soft_labels(tmp_path, capsys):
    from emodistill.cli.main import main
    from evaluate_helpers import write_feature_dir

    features = write_feature_dir(tmp_path / "features")
    common = ["--features", str(features), "--budgets", "2", "--repeats", "1", "--downstream-steps", "4",
              "--device", "cpu"]
    assert main(["baselines", *common, "--out", str(tmp_path / "hard")]) == 0
    assert main(["baselines", *common, "--soft-labels", "--augment-noise", "0.2", "--out", str(tmp_path / "soft")]) == 0
    printed = capsys.readouterr().out
    assert "learnt with the real-data reference's soft labels and Gaussian feature noise (σ 0.2)" in printed
    hard, soft = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("hard", "soft"))
    assert soft["config"]["soft_labels"] and soft["config"]["downstream"]["augment_noise"] == 0.2
    assert hard["reference"]["predictions"] == soft["reference"]["predictions"]  # it learns the real labels
    assert [s["conditions"]["ppc2"]["predictions"] for s in hard["sources"]] != \
        [s["conditions"]["ppc2"]["predictions"] for s in soft["sources"]]
