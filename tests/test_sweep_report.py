"""The sweep report read from a real sqlite MLflow store: Table 2's cells and marks, the figures, what the parent run
gets, and `emodistill report --experiment`."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_rgb
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NOTE
from PIL import Image

from emodistill.cli.main import main
from emodistill.sweep.figures import learning_curves_by_setting, setting_colours, uar_by_budget
from emodistill.sweep.report import best_trial, load_report, log_report, table_data, to_html, to_markdown
from emodistill.tracking import runs, store
from emodistill.tracking.trial import PREDICTIONS_FILE, TrialRun

EXPERIMENT = "report-test"
Y_TRUE = [i % 4 for i in range(40)]
# name, variant, trial index, {N: (dev, test, test std over repeats)}, utterances its downstream gets right
TRIALS = [
    ("gan_cnn · baseline", "baseline", 0, {10: (0.30, 0.25, 0.02), 20: (0.32, 0.28, 0.03)}, 10),
    ("gan_cnn · sml", "sml", 1, {10: (0.40, 0.45, 0.02), 20: (0.42, 0.47, 0.03)}, 25),
    ("gan_cnn · div_sml · seed 0", "div_sml", 2, {10: (0.50, 0.55, 0.02), 20: (0.52, 0.57, 0.01)}, 38),
    ("gan_cnn · div_sml · seed 1", "div_sml", 3, {10: (0.48, 0.51, 0.02), 20: (0.50, 0.55, 0.01)}, 36),
]


def _predictions(right: int) -> list[int]:
    """Predictions right on the first `right` utterances of Y_TRUE and wrong on the others."""
    return [y if i < right else (y + 1) % 4 for i, y in enumerate(Y_TRUE)]


def _trial(uri: str, experiment_id: str, parent: str, name: str, variant: str, index: int, scores: dict,
           right: int, suffix: str = "") -> None:
    """A finished trial as the sweep logs it: learning curves at steps 2 and 4, the dev-chosen scores, predictions.
    With a `suffix` (`_mean_std_mlp`), those are that decoder's, and the linear head, which every sweep scores too,
    gets other ones (0.1 higher, every prediction right)."""
    run = TrialRun.open(uri, experiment_id, parent, name, {"model.arch": "gan_cnn"},
                        {"variant": variant, "emodistill.arch": "gan_cnn", "ray.trial_id": f"abcde_{index:05d}"})
    heads = {suffix: (0.0, _predictions(right))} | ({"": (0.1, Y_TRUE)} if suffix else {})
    for step, late in ((2, 0.0), (4, 0.05)):
        run.log_evaluation(step, {f"{prefix}uar_ppc{n}{head}": value - 0.05 + late + shift
                                  for head, (shift, _) in heads.items() for n, (dev, test, _) in scores.items()
                                  for prefix, value in (("dev_", dev), ("", test))})
    selected, predictions = {}, {"y_true": Y_TRUE}
    for head, (shift, predicted) in heads.items():
        for n, (dev, test, std) in scores.items():
            selected.update({f"dev_uar_ppc{n}{head}": dev + shift, f"uar_ppc{n}{head}": test + shift,
                             f"uar_ppc{n}{head}_std": std})
            predictions[f"ppc{n}{head}"] = predicted
    run.log_selected(4, selected)
    run.client.log_dict(run.run_id, predictions, PREDICTIONS_FILE)
    run.finish()


def _sweep(uri: str, experiment: str, suffix: str = "") -> str:
    """A sweep's parent run (objective `dev_uar_ppc10{suffix}`), its reference at 50 % UAR under that decoder (the
    linear head's at 70 %, which a decoder objective must not show), and the TRIALS; returns the parent's id."""
    parent = runs.start_parent_run(experiment, experiment, {"objective.metric": f"dev_uar_ppc10{suffix}",
                                                            "evaluation.repeats": 3},
                                   {"emodistill.space": "smoke"}, uri, features="f00d")
    client = store.tracking_client(uri)
    experiment_id = client.get_run(parent).info.experiment_id
    reference = client.create_run(experiment_id, run_name="reference",
                                  tags={runs.KIND_TAG: "baseline", MLFLOW_PARENT_RUN_ID: parent}).info.run_id
    scores = {"uar_real_full": 0.5, "random.uar_ppc10": 0.40, "random.uar_ppc20": 0.45, "kmeans.uar_ppc10": 0.43,
              "kmeans.acc_ppc10": 0.44}
    others = {"uar_real_full": 0.7, "random.uar_ppc10": 0.65} if suffix else {}
    runs.log_metrics(client, reference, {f"{key}{suffix}": value for key, value in scores.items()} | others, step=0)
    runs.finish_run(client, reference)
    for trial in TRIALS:
        _trial(uri, experiment_id, parent, *trial, suffix=suffix)
    return parent


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Experiment `report-test`: a reference at 50 % UAR, Baseline, +L_SML and two seeds of +L_DIV +L_SML (3
    evaluation repeats each), and a failed +L_DIV."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlruns.db'}"
    parent = _sweep(uri, EXPERIMENT)
    experiment_id = store.tracking_client(uri).get_run(parent).info.experiment_id
    failed = TrialRun.open(uri, experiment_id, parent, "gan_cnn · div", {}, {"variant": "div"})
    failed.fail("training diverged: loss is nan at step 3")
    return uri, parent


def test_a_report_of_a_decoder_objective_shows_that_decoders_scores_everywhere(tmp_path):
    """Chosen by the mean+std MLP: its cells, reference, baselines, marks, curves, axes and table records."""
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    parent = _sweep(uri, "decoder-test", "_mean_std_mlp")
    report = load_report("decoder-test", uri)
    assert report.parent_run_id == parent and report.decoder == "mean_std_mlp" and report.reference == 0.5
    rows = {line.split(" | ")[0].lstrip("| "): line for line in to_markdown(report).splitlines()
            if line.startswith("| ")}
    assert rows["random (baseline)"] == "| random (baseline) | — | — | 40.00 (0.80×) | — | — | 45.00 (0.90×) | — | — |"
    assert "| 45.00 ± 4.97 † (0.90×) | 40.00 | +5.00 |" in rows["gan_cnn · sml"]
    assert "the mean_std_mlp decoder, which scores the objective" in to_markdown(report)
    assert report.rows[1].curves[10]["test"] == [(2, pytest.approx(0.40)), (4, pytest.approx(0.45))]
    assert uar_by_budget(report).axes[0].get_ylabel() == "test UAR (%, mean_std_mlp head)"
    assert learning_curves_by_setting(report).axes[0].get_ylabel() == "UAR (%, mean_std_mlp head)"
    assert set(table_data(report)["decoder"]) == {"mean_std_mlp"}
    plt.close("all")


def test_report_has_a_row_per_setting_with_its_ci_ratio_marks_and_dev_uar(sweep):
    uri, parent = sweep
    report = load_report(EXPERIMENT, uri)
    assert report.parent_run_id == parent and report.budgets == [10, 20] and report.chance == 0.25
    assert [(row.name, len(row.runs)) for row in report.rows] == [
        ("gan_cnn · baseline", 1), ("gan_cnn · sml", 1), ("gan_cnn · div_sml", 2)]
    lines = to_markdown(report).splitlines()
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ")}
    assert rows["real data (reference)"] == "| real data (reference) | — | 50.00 | — | — | — | — | — | — |"
    # The baselines the reference run scored, and every row's improvement over the random subset (points).
    assert rows["random (baseline)"] == "| random (baseline) | — | — | 40.00 (0.80×) | — | — | 45.00 (0.90×) | — | — |"
    assert rows["kmeans (baseline)"] == "| kmeans (baseline) | — | — | 43.00 (0.86×) | — | +3.00 | — | — | — |"
    # One trial: the 95 % CI over its 3 evaluation repeats (t(2) = 4.303: 4.303 x 2 / sqrt(3)).
    assert rows["gan_cnn · baseline"] == ("| gan_cnn · baseline | 1 | — | 25.00 ± 4.97 (0.50×) | 30.00 | -15.00 | "
                                          "28.00 ± 7.45 (0.56×) | 32.00 | -17.00 |")
    # Significant against the Baseline (†) only: it is +L_SML.
    assert "| 45.00 ± 4.97 † (0.90×) | 40.00 | +5.00 |" in rows["gan_cnn · sml"]
    # Two seeds: the CI over the trials (t(1) = 12.71: 12.71 x 0.0283 / sqrt(2)); † and ‡ from its best on dev.
    assert rows["gan_cnn · div_sml"].startswith("| gan_cnn · div_sml | 2 | — | 53.00 ± 25.41 †‡ (1.06×) | 49.00 | "
                                                "+13.00 |")
    summary = lines[2]
    assert "Sweep `report-test` of space `smoke`: 5 trials (1 failed, 4 finished)" in summary
    assert "objective `dev_uar_ppc10`" in summary and "3 evaluation repeat(s); features `f00d`" in summary
    assert "Best on dev: `gan_cnn · div_sml · seed 0` (dev_uar_ppc10 50.00 %, test uar_ppc10 55.00 %)." in summary
    assert "† McNemar" in to_markdown(report) and "Chance: 25.00 %" in to_markdown(report)


def test_report_figures_share_one_colour_per_setting_and_are_titled(sweep):
    report = load_report(EXPERIMENT, sweep[0])
    colours = setting_colours([row.name for row in report.rows])
    budgets = uar_by_budget(report)
    (ax,) = budgets.axes
    assert budgets.get_suptitle() == "report-test: test UAR by budget" and ax.get_xlabel() and ax.get_ylabel()
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == [row.name for row in report.rows] + ["real data, whole train set (50.0 %)", "chance (25.0 %)"]
    assert [to_rgb(c.lines[0].get_color()) for c in ax.containers] == [colours[row.name] for row in report.rows]
    curves = learning_curves_by_setting(report)
    assert [a.get_title() for a in curves.axes] == ["10 utterances per class", "20 utterances per class"]
    assert curves.get_suptitle() == "report-test: learning curves by setting"
    for row in report.rows:  # a dev and a test curve per setting and budget, in the setting's colour
        drawn = [line for a in curves.axes for line in a.get_lines() if to_rgb(line.get_color()) == colours[row.name]]
        assert sorted(line.get_linestyle() for line in drawn) == ["-", "-", "--", "--"]
    assert [list(y) for y in (line.get_ydata() for line in curves.axes[0].get_lines()[:2])] == [
        pytest.approx([20.0, 25.0]), pytest.approx([25.0, 30.0])]  # the Baseline's test, then dev curve (%)
    plt.close("all")


def test_report_is_logged_to_the_parent_run(sweep, tmp_path):
    uri, parent = sweep
    report = load_report(EXPERIMENT, uri)
    client = store.tracking_client(uri)
    log_report(client, report)
    assert client.get_run(parent).data.tags[MLFLOW_RUN_NOTE] == to_markdown(report)
    assert sorted(a.path for a in client.list_artifacts(parent, "report")) == [
        f"report/{name}" for name in ("learning_curves.png", "learning_curves.svg", "report.html", "table.json",
                                      "uar_vs_ppc.png", "uar_vs_ppc.svg")]
    table = json.loads(open(client.download_artifacts(parent, "report/table.json", str(tmp_path))).read())
    records = [dict(zip(table["columns"], values)) for values in table["data"]]
    assert records[0]["setting"] == "real data (reference)" and records[0]["test_uar"] == 0.5
    assert {r["decoder"] for r in records} == {"linear"}
    div_sml = next(r for r in records if r["setting"] == "gan_cnn · div_sml" and r["ppc"] == 10)
    assert div_sml["trials"] == 2 and div_sml["ci_low"] < 0.53 < div_sml["ci_high"]
    assert div_sml["mcnemar_p_vs_baseline"] < 0.05 and div_sml["mcnemar_p_vs_sml"] < 0.05
    png = client.download_artifacts(parent, "report/uar_vs_ppc.png", str(tmp_path))
    assert Image.open(png).size[0] >= 1000  # readable without zooming
    page = open(client.download_artifacts(parent, "report/report.html", str(tmp_path))).read()
    assert page.count("<figure><svg") == 2 and "<td>gan_cnn · div_sml</td>" in page
    assert page.startswith(to_html(report, {}).removesuffix("</body></html>"))


def test_cli_prints_the_report_of_an_experiment(sweep, capsys):
    uri, _ = sweep
    assert main(["report", "--experiment", EXPERIMENT, "--tracking-uri", uri]) == 0
    printed = capsys.readouterr()
    assert printed.out == to_markdown(load_report(EXPERIMENT, uri))
    assert "Downloading artifacts" not in printed.err  # no progress bar for a file or two
    assert main(["report", "--experiment", "nope", "--tracking-uri", uri]) == 2
    assert "no experiment 'nope'" in capsys.readouterr().err
    store.get_or_create_experiment("no-sweep", uri)
    assert main(["report", "--experiment", "no-sweep", "--tracking-uri", uri]) == 2
    assert "experiment 'no-sweep' in" in (err := capsys.readouterr().err) and "holds no sweep" in err


FOLDS_EXPERIMENT = "report-folds"
# fold -> (utterances in its test split, its reference's UAR)
FOLD_TESTS = {1: (40, 0.50), 2: (36, 0.60), 3: (44, 0.55)}
# setting, variant, {fold: (dev, test) at N=10}, utterances right per fold. The Baseline has the single best dev
# score (fold 2) but +L_SML the best mean over folds: the champion comes from +L_SML.
FOLD_TRIALS = [
    ("gan_cnn · baseline", "baseline", {1: (0.20, 0.30), 2: (0.45, 0.36), 3: (0.22, 0.33)}, {1: 10, 2: 10, 3: 12}),
    ("gan_cnn · sml", "sml", {1: (0.38, 0.40), 2: (0.36, 0.50), 3: (0.40, 0.45)}, {1: 38, 2: 34, 3: 40}),
]


@pytest.fixture(scope="module")
def folds_sweep(tmp_path_factory):
    """Experiment `report-folds`: a Baseline and a +L_SML trial on each of folds 1-3 (test splits of different
    sizes), a reference per fold."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('folds') / 'mlruns.db'}"
    parent = runs.start_parent_run(FOLDS_EXPERIMENT, FOLDS_EXPERIMENT, {"objective.metric": "dev_uar_ppc10",
                                                                        "evaluation.repeats": 1}, {}, uri)
    client = store.tracking_client(uri)
    experiment_id = client.get_run(parent).info.experiment_id
    for fold, (_, uar) in FOLD_TESTS.items():
        reference = client.create_run(experiment_id, run_name=f"reference · fold {fold}", tags={
            runs.KIND_TAG: "baseline", MLFLOW_PARENT_RUN_ID: parent}).info.run_id
        client.log_param(reference, "fold", fold)
        runs.log_metrics(client, reference, {"uar_real_full": uar}, step=0)
        runs.finish_run(client, reference)
    index = 0
    for name, variant, scores, right in FOLD_TRIALS:
        for fold, (dev, test) in scores.items():
            run = TrialRun.open(uri, experiment_id, parent, f"{name} · fold {fold}", {"fold": fold},
                                {"variant": variant, "ray.trial_id": f"abcde_{index:05d}"})
            index += 1
            run.log_selected(4, {"dev_uar_ppc10": dev, "uar_ppc10": test})
            y_true = [i % 4 for i in range(FOLD_TESTS[fold][0])]
            predicted = [y if i < right[fold] else (y + 1) % 4 for i, y in enumerate(y_true)]
            run.client.log_dict(run.run_id, {"y_true": y_true, "ppc10": predicted}, PREDICTIONS_FILE)
            run.finish()
    return uri, parent


def test_report_over_folds_gives_mean_and_std_beside_each_fold(folds_sweep, tmp_path):
    uri, parent = folds_sweep
    report = load_report(FOLDS_EXPERIMENT, uri)
    assert report.folds == [1, 2, 3] and report.several_folds
    assert [(row.name, len(row.runs)) for row in report.rows] == [("gan_cnn · baseline", 3), ("gan_cnn · sml", 3)]
    sml = report.rows[1].cells[10]
    assert sml.test == pytest.approx(0.45) and sml.std == pytest.approx(0.05) and sml.dev == pytest.approx(0.38)
    assert {fold: cell.test for fold, cell in sml.folds.items()} == pytest.approx({1: 0.40, 2: 0.50, 3: 0.45})
    assert all(cell.p_baseline < 0.05 for cell in sml.folds.values()) and sml.p_baseline < 0.05
    text = to_markdown(report)
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert "| real data (reference) | — | 55.00 ± 5.00 | — | — | — |" in rows
    assert "| gan_cnn · baseline | 3 | — | 33.00 ± 3.00 (0.60×) | 29.00 | — |" in rows  # no ladder logged here
    assert "| gan_cnn · sml | 3 | — | 45.00 ± 5.00 † (0.82×) | 38.00 | — |" in rows
    # The per-fold table: each fold's value, ratio to that fold's reference, McNemar against that fold's Baseline.
    assert "Per fold:" in text and "| setting | fold | trials | whole train set | 10 per class | dev |" in text
    assert [row for row in rows if row.startswith("| real data (reference) | ") and "±" not in row] == [
        f"| real data (reference) | {fold} | — | {100 * uar:.2f} | — | — |" for fold, (_, uar) in FOLD_TESTS.items()]
    assert "| gan_cnn · baseline | 2 | 1 | — | 36.00 (0.60×) | 45.00 |" in rows
    assert "| gan_cnn · sml | 2 | 1 | — | 50.00 † (0.83×) | 36.00 |" in rows
    assert "mean ± standard deviation over the 3 folds (1, 2, 3" in text
    # Chosen on dev only: the setting with the best mean dev objective, then its best trial on dev.
    assert best_trial(report).info.run_name == "gan_cnn · sml · fold 3"
    assert ("Best setting on the mean dev_uar_ppc10 over folds: `gan_cnn · sml` (38.00 %); its best trial: "
            "`gan_cnn · sml · fold 3` (dev_uar_ppc10 40.00 %, test uar_ppc10 45.00 %)") in text
    data = table_data(report)
    records = [dict(zip(data, values)) for values in zip(*data.values())]
    mean = next(r for r in records if r["setting"] == "gan_cnn · sml" and r["fold"] is None)
    assert mean["test_uar"] == pytest.approx(0.45) and mean["test_std"] == pytest.approx(0.05)
    per_fold = {r["fold"]: r["test_uar"] for r in records if r["setting"] == "gan_cnn · sml" and r["fold"]}
    assert per_fold == pytest.approx({1: 0.40, 2: 0.50, 3: 0.45})
    page = to_html(report, {})
    assert page.count("<table>") == 2
    log_report(store.tracking_client(uri), report)  # figures draw the std over folds as bars
    plt.close("all")


def test_the_best_setting_over_folds_is_chosen_among_those_scored_on_every_fold():
    from mlflow.entities import Metric, Param, Run, RunData, RunInfo

    from emodistill.sweep.report import Row, SweepReport

    def trial(name, fold, dev):
        info = RunInfo(name, "0", "user", "FINISHED", 0, 1, "active", run_name=name)
        return Run(info, RunData(metrics=[Metric("dev_uar_ppc10", dev, 0, 1)], params=[Param("fold", str(fold))]))

    # "lucky" failed on the hard fold 2: its mean over the one fold it has would beat "steady"'s over both.
    lucky = Row("lucky", "a", [trial("lucky · fold 1", 1, 0.70)], best=trial("lucky · fold 1", 1, 0.70))
    steady_runs = [trial("steady · fold 1", 1, 0.65), trial("steady · fold 2", 2, 0.45)]
    steady = Row("steady", "b", steady_runs, best=steady_runs[0])
    report = SweepReport(experiment="e", parent_run_id="p", objective="dev_uar_ppc10", budgets=[10], repeats=1,
                         reference=None, chance=None, rows=[lucky, steady], statuses={"FINISHED": 3}, folds=[1, 2])
    assert best_trial(report).info.run_name == "steady · fold 1"
    # With no setting scored on every fold, the best mean over the folds each has.
    report.rows = [lucky, Row("half", "c", steady_runs[1:], best=steady_runs[1])]
    assert best_trial(report).info.run_name == "lucky · fold 1"
