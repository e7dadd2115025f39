"""`emodistill evaluate | baselines | report` end to end on a micro feature dir, and their error paths."""

from __future__ import annotations

import json

import pytest

from emodistill.cli.main import main
from emodistill.features.store import load_splits
from evaluate_helpers import micro_generator, write_feature_dir
from sweep_fixtures import make_corpus_dir

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate-cli")
    features = write_feature_dir(root / "features")
    return features, micro_generator(root / "gan", seed=0), micro_generator(root / "baseline", seed=1)


def test_evaluate_writes_results_figures_and_tables(inputs, tmp_path, capsys):
    features, gan, baseline = inputs
    out = tmp_path / "eval"
    code = main(["evaluate", "--generator", f"GAN-ATT={gan}", "--generator", f"Baseline={baseline}",
                 "--features", str(features), "--budgets", "2", "5", "--repeats", "2", "--imbalanced",
                 "--downstream-steps", "4", "--device", "cpu", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| GAN-ATT (generator) |" in printed and "| random (baseline) |" in printed
    assert f"wrote {out / 'results.json'}" in printed
    report = json.loads((out / "results.json").read_text())
    assert report["conditions"] == ["ppc2", "ppc2_imbalanced", "ppc5", "ppc5_imbalanced"]
    names = [s["name"] for s in report["sources"]]
    assert names == ["random", "herding", "kmeans", "kcenter", "gaussian", "GAN-ATT", "Baseline"]
    gan_metrics = report["sources"][5]["metrics"]
    assert {"uar_ppc2", "uar_ppc5_imbalanced", "mcnemar_p_ppc5"} <= set(gan_metrics)
    # 5 per class exceeds the 4 real 'sad' utterances: the random subset skips that budget.
    assert "ppc5" not in report["sources"][0]["conditions"]
    assert {(c["a"], c["b"]) for c in report["comparisons"]} == {("GAN-ATT", "Baseline")}
    assert set(report["privacy"]) == {"real data", *names}
    assert report["data"] == {"dev_by": "utterance", "normalize": "none"}  # SUPERB's, as the generators were trained
    gan = report["sources"][5]["conditions"]["ppc2"]
    random = report["sources"][0]["conditions"]["ppc2"]
    assert gan["ratio"] == pytest.approx(gan["mean"] / report["reference"]["uar_real_full"])
    assert gan["vs_random"]["points"] == pytest.approx(100 * (gan["mean"] - random["mean"]))
    assert random["vs_random"] is None
    assert set(report["cost"]["size"]["generators"]) == {"GAN-ATT", "Baseline"}
    for figure in ("uar_vs_ppc.png", "confusion.png"):
        assert (out / figure).read_bytes()[:8] == PNG_MAGIC

    assert main(["report", "--results", str(out / "results.json")]) == 0
    reprinted = capsys.readouterr().out
    assert reprinted.strip() == printed.split("\nwrote ")[0].strip()


def test_baselines_alone(inputs, tmp_path, capsys):
    features, _, _ = inputs
    code = main(["baselines", "--features", str(features), "--budgets", "3", "--repeats", "1",
                 "--downstream-steps", "2", "--device", "cpu", "--out", str(tmp_path)])
    assert code == 0
    report = json.loads((tmp_path / "results.json").read_text())
    assert [s["kind"] for s in report["sources"]] == ["baseline"] * 5
    assert "herding (baseline)" in capsys.readouterr().out


def test_baselines_on_a_fold(tmp_path, capsys):
    features = make_corpus_dir(tmp_path / "features", sessions=3, per_session=8)
    code = main(["baselines", "--features", str(features), "--fold", "3", "--budgets", "1", "--repeats", "1",
                 "--downstream-steps", "2", "--device", "cpu", "--out", str(tmp_path / "out")])
    assert code == 0
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert report["features"] == f"{features} (fold 3)"
    assert report["cost"]["size"]["feature_bytes"] == load_splits(features, 3)["train"].nbytes
    capsys.readouterr()
    assert main(["baselines", "--features", str(features), "--fold", "7", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no fold 7 (fold K tests on session K; sessions: [1, 2, 3])" in err


def test_a_generator_is_evaluated_only_on_the_fold_it_was_trained_on(tmp_path, capsys):
    features = make_corpus_dir(tmp_path / "features", sessions=3, per_session=8)
    assert main(["distill", "--features", str(features), "--config", "micro", "--fold", "2", "--set", "model.frames=16",
                 "--set", "optim.batch_size=8", "--set", "train.steps=1", "--set", "train.device=cpu",
                 "--out", str(tmp_path / "run")]) == 0
    evaluate = ["evaluate", "--features", str(features), "--generator", f"g={tmp_path / 'run' / 'generator'}",
                "--budgets", "1", "--repeats", "1", "--downstream-steps", "2", "--device", "cpu"]
    capsys.readouterr()
    # Fold 1 (the default) tests on session 1, which fold 2's generator learnt from.
    assert main([*evaluate, "--out", str(tmp_path / "fold1")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--generator g: trained on fold 2 of" in err and "evaluate it with --fold 2" in err
    assert main([*evaluate, "--fold", "2", "--out", str(tmp_path / "fold2")]) == 0
    assert json.loads((tmp_path / "fold2" / "results.json").read_text())["features"] == f"{features} (fold 2)"


@pytest.mark.parametrize("argv, message", [
    (["--generator", "{root}/nowhere"], "is not a directory"),
    (["--generator", "{gan}", "--budgets", "0"], "budgets.0"),
    (["--generator", "a={gan}", "--generator", "a={gan}"], "used twice"),
])
def test_evaluate_error_paths(inputs, tmp_path, capsys, argv, message):
    features, gan, _ = inputs
    argv = [a.format(root=tmp_path, gan=gan) for a in argv]
    assert main(["evaluate", *argv, "--features", str(features), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("emodistill evaluate: error:") and message in err


def test_report_rejects_a_foreign_file(tmp_path, capsys):
    (tmp_path / "results.json").write_text(json.dumps({"metrics": {}}))
    assert main(["report", "--results", str(tmp_path / "results.json")]) == 2
    assert "not an emodistill evaluation report" in capsys.readouterr().err
