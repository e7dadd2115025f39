"""Sweeps on a real local Ray cluster with a real sqlite MLflow store: the smoke sweep end to end, shared
inputs read from the object store, a trial killed mid-run that resumes from its checkpoint, a diverging trial."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import ray
import yaml
from mlflow import MlflowClient

from emodistill import best_distilled_set, best_generator
from emodistill.distilled import generator_digest
from emodistill.cli.main import main
from emodistill.features import dataset
from emodistill.features.schema import validate_table
from emodistill.features.store import load_splits, read_table
from emodistill.sweep import run_sweep
from emodistill.sweep.report import legend, load_report
from emodistill.sweep.shared import open_shared_splits, share_inputs, table_from_buffer
from emodistill.tracking.best import best_run
from emodistill.tracking.registry import champion_run_id
from sweep_fixtures import LABELS, make_corpus_dir, make_feature_dir, micro_space, processed_reports

pytestmark = pytest.mark.slow
# The killed trial reports every 2 steps and is killed after its second report: leave it steps to lose.
KILLED_TRIAL_STEPS = 16
INTERRUPTED_TRIAL_STEPS = 12  # the same margin for the sweep interrupted by Ctrl+C


@pytest.fixture(scope="module")
def cluster():
    """One local 2-CPU Ray instance for the module."""
    ray.init(address="local", num_cpus=2, include_dashboard=False)  # never a cluster found on the machine
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    return make_feature_dir(tmp_path_factory.mktemp("features"))


@pytest.fixture(scope="module")
def smoke_features(tmp_path_factory):
    """Train split of 22 per class, so that the selection ladder is feasible at the smoke budgets (10, 20)."""
    return make_feature_dir(tmp_path_factory.mktemp("smoke-features"), sizes={"train": 88, "dev": 12, "test": 16})


@pytest.fixture(scope="module")
def smoke(cluster, smoke_features, tmp_path_factory):
    """The smoke sweep (Baseline, +L_DIV, +L_SML, both; two at a time) plus a trial that diverges, run once.

    The +L_DIV trial runs longer and its worker is SIGKILLed once Tune holds its first checkpoint.
    """
    root = tmp_path_factory.mktemp("smoke")
    space = micro_space(root / "space.yaml")
    data = yaml.safe_load(space.read_text())
    data["search"]["variants"]["div"]["train.steps"] = KILLED_TRIAL_STEPS
    data["search"]["variants"]["diverge"] = {"optim.lr_g": 1.0e30, "optim.lr_d": 1.0e30}
    # A second decoder on every draw, and distilled sets chosen by herding among 2 candidates per sample.
    data["evaluation"].update({"decoders": ["linear", "attentive"], "select": {"method": "herding", "candidates": 2}})
    space.write_text(yaml.safe_dump(data, sort_keys=False))
    uri = f"sqlite:///{root / 'mlruns.db'}"
    killed: list[str] = []
    done = threading.Event()
    killer = threading.Thread(target=_kill_when_checkpointed, args=(root / "sweeps", "div", killed, done))
    killer.start()
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            result = run_sweep(space, smoke_features, name="smoke-test", tracking_uri=uri, storage_path=root / "sweeps")
    finally:
        done.set()
        killer.join()
    client = MlflowClient(uri)
    runs = {client.get_run(t["run_id"]).data.tags["variant"]: client.get_run(t["run_id"])
            for t in result.trials.values()}
    return result, client, uri, runs, killed, printed.getvalue()


def _kill_when_checkpointed(storage: Path, variant: str, killed: list, done: threading.Event) -> None:
    """SIGKILL the worker of the trial of `variant` once Tune's driver holds a checkpoint of it (until `done`).

    A `checkpoint_*` folder appears as soon as the worker persists it, before the driver registers it; a second
    processed report (see processed_reports) means the driver has.
    """
    while not done.is_set():
        for trial_dir in storage.glob(f"*/*variant={variant}_*"):
            rows = _processed_reports(trial_dir)
            if len(rows) >= 2:
                os.kill(rows[-1]["pid"], signal.SIGKILL)
                killed.append(rows[-1]["trial_id"])
                return
        time.sleep(0.1)


def _processed_reports(trial_dir: Path) -> list[dict]:
    """The trial's reports that Tune's driver has processed (the complete rows of its result.json)."""
    try:
        return processed_reports((trial_dir / "result.json").read_text())
    except (FileNotFoundError, NotADirectoryError):
        return []


@pytest.fixture(scope="module")
def corpus_features(tmp_path_factory):
    """A whole-corpus table of 5 sessions of 12 utterances: folds chosen at load."""
    return make_corpus_dir(tmp_path_factory.mktemp("corpus"))


@pytest.mark.parametrize("layout, table, folds, sizes", [
    ("fixed splits", "train", [None], {"train": 32, "dev": 12, "test": 16}),
    ("whole corpus", "corpus", [1, 3, 5], {"train": 38, "dev": 10, "test": 12}),
])
def test_shared_tables_are_read_from_the_object_store_without_copies(cluster, features, corpus_features, tmp_path,
                                                                     monkeypatch, layout, table, folds, sizes):
    source = features if layout == "fixed splits" else corpus_features
    copy = shutil.copytree(source, tmp_path / "features")
    shared = share_inputs(copy, folds)
    shutil.rmtree(copy)  # trials must not need the files any more
    # Features with folds are shared as their one table, whatever the number of folds.
    assert set(shared.tables) == ({"train", "dev", "test"} if table == "train" else {"corpus"})

    @ray.remote
    def inspect(shared, fold):
        data = ray.get(shared.tables[table])
        frames = table_from_buffer(data).column("features").chunk(0).flatten().flatten()
        address = frames.buffers()[1].address
        splits = open_shared_splits(shared, fold)
        start, end = data.ctypes.data, data.ctypes.data + data.nbytes
        # What the trainer reads (a fold's view of the whole table): the object store's bytes, not a copy.
        views = [fs.frames for name, fs in splits.items() if table == "corpus" or name == "train"]
        return (start <= address < end, all(start <= v.ctypes.data and v.ctypes.data + v.nbytes <= end for v in views),
                data.flags.writeable, {name: len(fs) for name, fs in splits.items()},
                {name: fs.utt_ids for name, fs in splits.items()})

    for fold in folds:
        table_inside, frames_inside, writeable, got, utt_ids = ray.get(inspect.remote(shared, fold))
        assert table_inside and frames_inside and not writeable
        assert got == sizes
        if fold is not None:
            assert {name: fs.utt_ids for name, fs in load_splits(corpus_features, fold).items()} == utt_ids
    # The driver validated each table when it opened it to share it; a trial's view does not validate it again.
    monkeypatch.setattr(dataset, "validate_table", lambda table, source: pytest.fail(f"{source} validated again"))
    assert open_shared_splits(shared, folds[0])["train"].utt_ids


def test_smoke_sweep_logs_every_trial(smoke):
    result, client, _, runs, _, _ = smoke
    assert len(result.trials) == 5
    variants = {name: run for name, run in runs.items() if name != "diverge"}
    assert {run.info.status for run in variants.values()} == {"FINISHED"}
    reference = client.search_runs([result.experiment_id], "tags.`emodistill.kind` = 'baseline'")[0]
    assert 0.0 <= reference.data.metrics["uar_real_full"] <= 1.0
    # Each decoder against its own real-full reference; the baseline ladder at every budget beside it.
    assert {"uar_real_full_attentive", "acc_real_full", "acc_real_full_attentive"} <= set(reference.data.metrics)
    for source in ("random", "herding", "kmeans", "kcenter", "gaussian", "gaussian-herding"):
        assert {f"{source}.uar_ppc10", f"{source}.uar_ppc20_attentive"} <= set(reference.data.metrics), source
    for variant, run in variants.items():
        params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
        assert tags["mlflow.parentRunId"] == result.parent_run_id
        assert tags["mcnemar.reference"] == reference.info.run_id
        assert tags["emodistill.features"] and tags["ray.node_id"]
        assert params["loss.lambda_sml"] == ("1.0" if "sml" in variant else "0.0")
        assert params["model.arch"] == "gan_cnn" and params["train.checkpoint_every"] == "2"
        assert run.info.run_name == f"gan_cnn · {variant}" and tags["emodistill.arch"] == "gan_cnn"
        for n in (10, 20):
            assert 0.0 <= metrics[f"uar_ppc{n}"] <= 1.0 and 0.0 <= metrics[f"dev_uar_ppc{n}"] <= 1.0
            assert 0.0 <= metrics[f"mcnemar_p_ppc{n}"] <= 1.0
            assert {f"uar_ppc{n}_attentive", f"acc_ppc{n}_attentive", f"acc_ppc{n}"} <= set(metrics)
            assert (f"mcnemar_p_ppc{n}_vs_baseline" in metrics) == (variant != "baseline")
        # The headline metrics are the dev-chosen checkpoint's: its point on the learning curves.
        selected = int(metrics["selected_step"])
        curve = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "curve/dev_uar_ppc20")}
        assert curve[selected] == metrics["dev_uar_ppc20"] == max(curve.values())
        test_curve = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "curve/uar_ppc20")}
        assert test_curve[selected] == metrics["uar_ppc20"]
        if variant != "div":  # the killed one; see below
            assert [m.step for m in client.get_metric_history(run.info.run_id, "loss_g")] == [1, 2, 3, 4]
            assert sorted(curve) == sorted(test_curve) == [2, 4]
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"generator", "results.json", "predictions.json", "figures", "distilled"} <= artifacts
        assert {a.path for a in client.list_artifacts(run.info.run_id, "distilled")} == {
            "distilled/ppc10.arrow", "distilled/ppc20.arrow"}
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["emodistill.kind"] == "sweep"
    # The sweep's report: its table in the parent run's description, the page, table and figures as artifacts.
    description = parent.data.tags["mlflow.note.content"]
    assert "Sweep `smoke-test` of space `smoke`: 5 trials (1 failed, 4 finished)" in description
    assert f"registered as smoke-test version {result.champion_version} (alias champion)" in description
    assert f"| real data (reference) | — | {100 * reference.data.metrics['uar_real_full']:.2f} |" in description
    for variant in variants:
        assert f"| gan_cnn · {variant} | 1 | — | " in description
    assert {a.path for a in client.list_artifacts(result.parent_run_id, "report")} == {
        f"report/{name}" for name in ("learning_curves.png", "learning_curves.svg", "report.html", "table.json",
                                      "uar_vs_ppc.png", "uar_vs_ppc.svg")}


def test_smoke_sweep_registers_and_serves_its_best_generator(smoke):
    result, client, uri, _, _, _ = smoke
    best = max((t for t in result.trials.values() if t["status"] == "FINISHED"), key=lambda t: t["dev_uar_ppc20"])
    assert result.objective == "dev_uar_ppc20" and result.best_value == best["dev_uar_ppc20"]
    assert champion_run_id("smoke-test", uri) == result.best_run_id
    version = client.get_model_version_by_alias("smoke-test", "champion")
    assert str(version.version) == str(result.champion_version)
    table = best_generator("smoke-test", tracking_uri=uri).sample(5, seed=1)  # by the sweep's objective
    validate_table(table, "sample")
    assert table.num_rows == 20 and set(table.column("label").to_pylist()) == set(LABELS)
    champion = best_generator("smoke-test", tracking_uri=uri, champion=True)
    assert champion.sample(2).num_rows == 8
    # The best trial's distilled set of a budget, checked against its recorded SHA-256.
    chosen = best_distilled_set("smoke-test", 10, tracking_uri=uri)
    meta = validate_table(chosen, "distilled set")
    assert chosen.num_rows == 40 and meta.provenance["method"] == "herding" and meta.provenance["candidates"] == 2
    assert meta.provenance["generator"] == generator_digest(best_generator("smoke-test", tracking_uri=uri))


def test_sample_writes_a_distilled_set_against_the_features_the_generator_learnt_from(smoke, smoke_features,
                                                                                      tmp_path, capsys):
    _, _, uri, _, _, _ = smoke
    out = tmp_path / "set.arrow"
    assert main(["sample", "--experiment", "smoke-test", "--tracking-uri", uri, "--ppc", "3", "--select", "cover",
                 "--candidates", "4", "--features", str(smoke_features), "--seed", "2", "--out", str(out)]) == 0
    assert "wrote 12 synthetic utterances" in capsys.readouterr().out
    meta = validate_table(read_table(out), str(out))
    assert {k: meta.provenance[k] for k in ("method", "ppc", "candidates", "seed")} == {
        "method": "cover", "ppc": {label: 3 for label in LABELS}, "candidates": 4, "seed": 2}
    assert meta.provenance["data"] == {"dev_by": "utterance", "normalize": "speaker"}  # the smoke space's protocol
    assert meta.normalization == "speaker"  # the generator learnt in the normalised space
    assert main(["sample", "--experiment", "smoke-test", "--tracking-uri", uri, "--ppc", "3", "--select", "cover",
                 "--out", str(tmp_path / "no.arrow")]) == 2
    assert "needs --features" in capsys.readouterr().err and not (tmp_path / "no.arrow").exists()


def test_killed_trial_resumes_from_its_checkpoint_in_the_same_run(smoke):
    result, client, _, runs, killed, _ = smoke
    assert killed, "the +L_DIV trial finished before it could be killed"
    run = runs["div"]
    assert run.info.status == "FINISHED" and run.data.tags["ray.trial_id"] == killed[0]
    resumed = client.get_metric_history(run.info.run_id, "resumed_from_step")
    assert resumed and resumed[0].value >= 2
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss_g")]
    assert steps.count(1) == 1 and max(steps) == KILLED_TRIAL_STEPS  # continued, never started over
    trial_ids = [r.data.tags.get("ray.trial_id") for r in client.search_runs([result.experiment_id])]
    assert trial_ids.count(killed[0]) == 1  # the restarted trial kept its run


def test_diverged_trial_fails_with_its_reason_and_the_sweep_goes_on(smoke):
    result, _, _, runs, _, _ = smoke
    diverged = runs["diverge"]
    assert diverged.info.status == "FAILED"
    assert "training diverged: loss" in diverged.data.tags["emodistill.failure"]
    assert result.trials[diverged.info.run_name]["status"] == "FAILED"
    assert result.best_run_id in {run.info.run_id for run in runs.values() if run.info.status == "FINISHED"}


def test_sweep_prints_a_line_per_evaluation_round_and_per_failed_trial(smoke):
    printed = smoke[-1].splitlines()
    # Every trial reports at steps 2 and 4 (the killed +L_DIV one up to 16): a line per round, not Tune's tables.
    rounds = [line for line in printed if line.startswith("evaluation round ")]
    assert [line.split(" (")[0] for line in rounds] == ["evaluation round 1/2", "evaluation round 2/2"] + [
        f"evaluation round {n}" for n in range(3, KILLED_TRIAL_STEPS // 2 + 1)]
    assert "trial(s), dev_uar_ppc20 best" in rounds[0] and "1 trial(s), dev_uar_ppc20 best" in rounds[-1]
    # Besides them: a line per failure (and Ray's notice of the worker this test killed); no Tune table.
    others = [line for line in printed if line not in rounds and "(raylet)" not in line]
    # The killed worker is named with Ray's exit detail; the diverging trial's reason is given at each retry.
    killed = [line for line in others if line.startswith("trial gan_cnn · div failed")]
    assert len(killed) == 1 and re.fullmatch(r"trial gan_cnn · div failed \(its worker died: Worker unexpectedly "
                                             r"exits .+\); retrying it from its last checkpoint \(retry 1 of \d\)",
                                             killed[0]), "\n".join(others)
    diverged = [line for line in others if line.startswith("trial gan_cnn · diverge failed")]
    assert len(killed) + len(diverged) == len(others) and "TrainingDiverged: loss 'wasserstein' is nan" in diverged[-1]
    assert diverged[-1].endswith("NaN/inf)") and all("retrying it from" in line for line in diverged[:-1])


def test_a_sweep_chooses_by_the_dev_score_of_another_decoder(cluster, features, tmp_path):
    """Objective dev_uar_ppc10_mean_std_mlp: each trial keeps the checkpoint that the mean+std MLP scored best on
    dev, whatever the linear head scored, and the best trial is the one with the highest such score."""
    space = micro_space(tmp_path / "space.yaml", objective={"metric": "dev_uar_ppc10_mean_std_mlp", "mode": "max"})
    data = yaml.safe_load(space.read_text())
    data["base"]["overrides"].update({"train.steps": 6, "train.eval_every": 1})  # six checkpoints to choose from
    data["evaluation"]["decoders"] = ["mean_std_mlp"]
    data["evaluation"]["downstream"].update({"max_steps": 100, "eval_every": 20})
    data["search"]["variants"] = {name: data["search"]["variants"][name] for name in ("baseline", "div")}
    space.write_text(yaml.safe_dump(data, sort_keys=False))
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    result = run_sweep(space, features, name="decoder-objective", tracking_uri=uri, storage_path=tmp_path / "sweeps")
    client = MlflowClient(uri)
    assert client.get_run(result.parent_run_id).data.params["objective.metric"] == "dev_uar_ppc10_mean_std_mlp"
    values, disagree = {}, False
    for trial in result.trials.values():
        run = client.get_run(trial["run_id"])
        chosen, best = first_best(client, run.info.run_id, "dev_uar_ppc10_mean_std_mlp")
        assert run.data.metrics["selected_step"] == chosen and run.data.metrics["dev_uar_ppc10_mean_std_mlp"] == best
        values[run.info.run_id] = best
        results = json.loads(Path(client.download_artifacts(run.info.run_id, "results.json", str(tmp_path)))
                             .read_text())  # its learning curves are the head's that chose
        assert results["curves_decoder"] == "mean_std_mlp"
        assert max(value for _, value in results["curves"]["10"]["dev"]) == best
        disagree |= first_best(client, run.info.run_id, "dev_uar_ppc10")[0] != chosen
    assert disagree, "the linear head's best step is the same in every trial: the test could not tell them apart"
    assert result.best_run_id == max(values, key=values.get) and result.best_value == max(values.values())
    # The report shows the scores of the head that chose, the reference's and the baselines' included.
    report = load_report("decoder-objective", uri)
    assert report.decoder == "mean_std_mlp"
    assert "a downstream (the mean_std_mlp decoder, which scores the objective;" in legend(report)
    for row in report.rows:
        (run,) = row.runs
        assert (row.cells[10].dev, row.cells[10].test) == (run.data.metrics["dev_uar_ppc10_mean_std_mlp"],
                                                           run.data.metrics["uar_ppc10_mean_std_mlp"])
    (reference,) = client.search_runs([result.experiment_id], "tags.`emodistill.kind` = 'baseline'")
    assert report.reference == reference.data.metrics["uar_real_full_mean_std_mlp"]
    assert report.baselines["gaussian"][10] == reference.data.metrics["gaussian.uar_ppc10_mean_std_mlp"]


def first_best(client: MlflowClient, run_id: str, metric: str) -> tuple[int, float]:
    """(step, value) of the first maximum of a trial's dev curve of `metric`, evaluated at steps 1-6."""
    curve = sorted((m.step, m.value) for m in client.get_metric_history(run_id, f"curve/{metric}"))
    assert [step for step, _ in curve] == [1, 2, 3, 4, 5, 6], curve
    best = max(value for _, value in curve)
    return next(step for step, value in curve if value == best), best


def test_interrupted_optuna_sweep_resumes_from_its_checkpoints(cluster, features, tmp_path):
    space = micro_space(tmp_path / "space.yaml")
    data = yaml.safe_load(space.read_text())
    data["base"]["overrides"]["train.steps"] = INTERRUPTED_TRIAL_STEPS
    data["search"] = {"type": "optuna", "seed": 0, "scheduler": {"type": "asha", "grace_period": 4},
                      "params": {"loss.lambda_fm": {"type": "float", "low": 0.5, "high": 2.0, "log": True}}}
    space.write_text(yaml.safe_dump(data, sort_keys=False))
    uri, storage = f"sqlite:///{tmp_path / 'mlruns.db'}", tmp_path / "sweeps"
    command = [sys.executable, "-m", "emodistill.cli.main", "sweep", "--space", str(space), "--features",
               str(features), "--name", "resume-test", "--tracking-uri", uri, "--storage-path", str(storage),
               "--address", ray.get_runtime_context().gcs_address]
    with (tmp_path / "driver.log").open("w") as log:
        driver = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                  env={**os.environ, "RAY_AUTH_MODE": "token"})
    deadline = time.monotonic() + 300
    while not any(len(_processed_reports(trial)) >= 2 for trial in storage.glob("resume-test-*/*")) \
            and driver.poll() is None:
        assert time.monotonic() < deadline, (tmp_path / "driver.log").read_text()[-3000:]
        time.sleep(0.2)
    driver.send_signal(signal.SIGINT)  # Ctrl+C: Tune saves the experiment state and stops the trial
    assert driver.wait(timeout=120) == 130, (tmp_path / "driver.log").read_text()[-3000:]
    printed = (tmp_path / "driver.log").read_text()
    assert "emodistill sweep --resume" in printed and "evaluation round 1/6 (" in printed
    # Quiet: no Tune status tables or configuration boxes, no MLflow download bars.
    assert not [noise for noise in ("Trial status", "== Status ==", "╭", "Downloading artifacts") if noise in printed]
    experiment = next(storage.glob("resume-test-*"))
    assert main(["sweep", "--resume", str(experiment)]) == 0
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("resume-test").experiment_id],
                                "tags.`emodistill.kind` = 'trial'")
    assert run.info.status == "FINISHED" and 0.5 <= float(run.data.params["loss.lambda_fm"]) <= 2.0
    assert client.get_metric_history(run.info.run_id, "resumed_from_step")[0].value >= 2
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss_g")]
    assert steps.count(1) == 1 and max(steps) == INTERRUPTED_TRIAL_STEPS


def test_five_fold_sweep_runs_every_setting_on_every_fold_and_aggregates_across_folds(cluster, corpus_features,
                                                                                    tmp_path):
    """Baseline and +L_SML on folds 1-5 (micro: one evaluation round at 10 per class): a trial per setting and fold,
    a pool and a reference per fold, the report's mean ± std over folds beside each fold's value."""
    space = micro_space(tmp_path / "space.yaml", folds=[1, 2, 3, 4, 5],
                        objective={"metric": "dev_uar_ppc10", "mode": "max"})
    data = yaml.safe_load(space.read_text())
    data["base"]["overrides"].update({"train.steps": 2, "train.eval_every": 2})
    data["evaluation"]["budgets"] = [10]
    data["search"]["variants"] = {k: v for k, v in data["search"]["variants"].items() if k in ("baseline", "sml")}
    space.write_text(yaml.safe_dump(data, sort_keys=False))
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    with contextlib.redirect_stdout(io.StringIO()):
        result = run_sweep(space, corpus_features, name="folds-test", tracking_uri=uri, storage_path=tmp_path / "s")
    client = MlflowClient(uri)
    runs = {name: client.get_run(t["run_id"]) for name, t in result.trials.items()}
    assert sorted(runs) == sorted(f"gan_cnn · {v} · fold {k}" for v in ("baseline", "sml") for k in range(1, 6))
    assert {run.info.status for run in runs.values()} == {"FINISHED"}
    references = {int(r.data.params["fold"]): r for r in client.search_runs(
        [result.experiment_id], "tags.`emodistill.kind` = 'baseline'")}
    assert sorted(references) == [1, 2, 3, 4, 5]
    assert len(list((tmp_path / "s" / "pool-cache").iterdir())) == 5  # a pool per fold, never shared
    for name, run in runs.items():
        fold = int(name.rsplit(" ", 1)[1])
        assert run.data.params["fold"] == str(fold) == str(result.trials[name]["fold"])
        assert run.data.tags["mcnemar.reference"] == references[fold].info.run_id
        if "sml" in name:  # compared with the Baseline of its own fold
            assert run.data.tags["mcnemar.baseline"] == runs[f"gan_cnn · baseline · fold {fold}"].info.run_id
    # The report: per setting, mean ± std over the folds of the trials' test UAR, and each fold's value.
    report = load_report("folds-test", uri)
    assert report.folds == [1, 2, 3, 4, 5] and [row.name for row in report.rows] == ["gan_cnn · baseline",
                                                                                    "gan_cnn · sml"]
    description = client.get_run(result.parent_run_id).data.tags["mlflow.note.content"]
    assert "mean ± standard deviation over the 5 folds" in description and "Per fold:" in description
    for row in report.rows:
        per_fold = {k: runs[f"{row.name} · fold {k}"].data.metrics["uar_ppc10"] for k in range(1, 6)}
        cell = row.cells[10]
        assert {k: c.test for k, c in cell.folds.items()} == per_fold
        assert cell.test == pytest.approx(statistics.fmean(per_fold.values()))
        assert cell.std == pytest.approx(statistics.stdev(per_fold.values()))
        assert f"| {row.name} | 5 | — | {100 * cell.test:.2f} ± {100 * cell.std:.2f} " in description
        for k, value in per_fold.items():
            assert f"| {row.name} | {k} | 1 | — | {100 * value:.2f}" in description
    # The champion: the best trial (on dev) of the setting with the best mean dev objective over the folds.
    mean_dev = {row.name: statistics.fmean(runs[f"{row.name} · fold {k}"].data.metrics["dev_uar_ppc10"]
                                           for k in range(1, 6)) for row in report.rows}
    setting = max(mean_dev, key=mean_dev.get)
    best = max((runs[f"{setting} · fold {k}"] for k in range(1, 6)), key=lambda r: r.data.metrics["dev_uar_ppc10"])
    assert result.best_run_id == best.info.run_id and champion_run_id("folds-test", uri) == best.info.run_id
    assert best_run("folds-test", tracking_uri=uri).info.run_id == best.info.run_id  # `emodistill best` agrees
