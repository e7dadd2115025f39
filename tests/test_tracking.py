"""MLflow tracking on a real sqlite store: run conventions, generator artifacts, registry, best run, CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from emodistill.cli.main import main
from emodistill.errors import ConfigError, EmodistillError, IntegrityError
from emodistill.files import file_sha256
from emodistill.features.store import read_table
from emodistill.tracking import best, registry, runs, store, uris
from emodistill.tracking.champion import champion_trial
from emodistill.tracking.naming import FOLD_PARAM
from emodistill.tracking.server import free_port
from silent_server import SilentServer
from toy import LABELS, save_micro_generator


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    """One sqlite store for the module (creating its tables takes seconds); tests use their own experiments."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlruns.db'}"


@pytest.fixture(scope="module")
def generator_dir(tmp_path_factory):
    """An untrained micro GAN saved as a generator artifact."""
    return save_micro_generator(tmp_path_factory.mktemp("gen") / "generator", dim=8, frames=8)[1]


def make_trial(uri, experiment, parent, name, status="FINISHED", metrics=None, generator_dir=None, tags=None):
    """A child run with `metrics`, optionally the generator artifact, ended with `status` (or left RUNNING)."""
    client = store.tracking_client(uri)
    experiment_id = store.get_or_create_experiment(experiment, uri)
    run_id = runs.start_trial_run(client, experiment_id, parent, name, {"loss.tau": 0.1}, tags)
    runs.log_metrics(client, run_id, metrics or {}, step=0)
    if generator_dir:
        runs.log_generator_artifact(client, run_id, generator_dir)
    if status != "RUNNING":
        runs.finish_run(client, run_id, status)
    return run_id


def test_tracking_uri_resolution(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert uris.resolve_tracking_uri() == f"sqlite:///{tmp_path}/mlruns.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///sub/env.db")
    assert uris.resolve_tracking_uri() == f"sqlite:///{tmp_path}/sub/env.db"
    assert uris.resolve_tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert uris.artifact_root_for("sqlite:////data/x/runs.db") == Path("/data/x/mlartifacts")
    assert uris.artifact_root_for("http://host:5000") is None
    assert uris.is_local_uri("sqlite:////data/runs.db") and uris.is_local_uri("/data/mlruns")
    assert not uris.is_local_uri("https://mlflow.example.org")
    with pytest.raises(ConfigError, match="sqlite:///"):
        uris.resolve_tracking_uri("sqlite://")


def test_parent_and_trial_runs_follow_conventions(uri):
    long_value = "x" * 7000
    params = {f"grid.p{i:03d}": i for i in range(150)} | {"loss.lambda_sml": 1.0, "notes": long_value}
    parent = runs.start_parent_run("conventions", "sweep-a", params, {"owner": "test"}, uri, features="f00d")
    client = store.tracking_client(uri)
    parent_run = client.get_run(parent)
    assert parent_run.info.run_name == "sweep-a"
    assert parent_run.data.tags[runs.KIND_TAG] == "sweep" and parent_run.data.tags["owner"] == "test"
    assert parent_run.data.tags[runs.FEATURES_TAG] == "f00d"
    assert len(parent_run.data.params) == 152 and parent_run.data.params["grid.p149"] == "149"
    assert len(parent_run.data.params["notes"]) == 6000 and parent_run.data.params["notes"].endswith("...")

    experiment = client.get_experiment(parent_run.info.experiment_id)
    assert experiment.name == "conventions"
    assert experiment.artifact_location == (uris.artifact_root_for(uri) / "conventions").as_uri()

    trial = runs.start_trial_run(client, experiment.experiment_id, parent, "trial_0", {"model.arch": "gan_cnn"},
                                 {"ray.trial_id": "abc"})
    runs.log_metrics(client, trial, {"loss.g": 1.5, "loss.d": -0.5}, step=3)
    trial_run = client.get_run(trial)
    assert trial_run.data.tags["mlflow.parentRunId"] == parent
    assert trial_run.data.tags[runs.KIND_TAG] == "trial" and trial_run.data.tags[runs.FEATURES_TAG] == "f00d"
    assert trial_run.data.params == {"model.arch": "gan_cnn"}
    assert [(m.step, m.value) for m in client.get_metric_history(trial, "loss.g")] == [(3, 1.5)]
    with pytest.raises(ConfigError, match="metrics must be numbers"):
        runs.log_metrics(client, trial, {"loss.g": "high"}, step=4)


def test_trial_run_is_resumed_not_duplicated(uri):
    parent = runs.start_parent_run("resume", "sweep-r", {}, None, uri)
    client = store.tracking_client(uri)
    experiment_id = client.get_run(parent).info.experiment_id
    first = runs.find_or_resume_trial_run(client, experiment_id, parent, "trial'1", {"optim.lr": 0.001})
    runs.finish_run(client, first, "FAILED", reason="node died")
    assert client.get_run(first).info.status == "FAILED"

    assert runs.find_or_resume_trial_run(client, experiment_id, parent, "trial'1", {"optim.lr": 0.001},
                                         run_id=first) == first
    assert client.get_run(first).info.status == "RUNNING"
    # Restarted before its first checkpoint: found by name under the same parent, and tagged with its new node.
    assert runs.find_or_resume_trial_run(client, experiment_id, parent, "trial'1", {"optim.lr": 0.001},
                                         {"ray.node_id": "node-b"}) == first
    assert client.get_run(first).data.tags["ray.node_id"] == "node-b"
    other = runs.find_or_resume_trial_run(client, experiment_id, parent, "trial_2", {})
    assert other != first
    other_parent = runs.start_parent_run("resume", "sweep-s", {}, None, uri)
    with pytest.raises(EmodistillError, match="belongs to parent run"):
        runs.find_or_resume_trial_run(client, experiment_id, other_parent, "trial'1", {}, run_id=first)


def test_failure_reason_is_tagged_and_stored(uri, tmp_path):
    parent = runs.start_parent_run("failures", "sweep-f", {}, None, uri)
    client = store.tracking_client(uri)
    run_id = make_trial(uri, "failures", parent, "t", status="RUNNING")
    runs.finish_run(client, run_id, "FAILED", reason="TrainingDiverged: loss is nan at step 7")
    run = client.get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags[runs.FAILURE_TAG] == "TrainingDiverged: loss is nan at step 7"
    text = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=runs.FAILURE_ARTIFACT,
                                               dst_path=str(tmp_path), tracking_uri=uri)
    assert "loss is nan" in Path(text).read_text()
    with pytest.raises(ConfigError, match="status must be"):
        runs.finish_run(client, run_id, "DONE")
    with pytest.raises(ConfigError, match="missing config.json"):
        runs.log_generator_artifact(client, run_id, tmp_path)


def test_champion_is_registered_and_loaded_without_pickles(uri, generator_dir, tmp_path):
    parent = runs.start_parent_run("champ", "sweep-c", {}, None, uri)
    run_id = make_trial(uri, "champ", parent, "trial_0", metrics={"uar_ppc100": 0.6}, generator_dir=generator_dir)
    # As a sweep does it: the winner's model is logged once its trial has finished.
    model_uri = runs.log_generator_model(run_id, generator_dir, uri)
    first = registry.register_champion(run_id, "champ", uri)  # finds the run's logged model itself
    second = registry.register_champion(run_id, "champ", uri, model_uri)
    assert (first, second) == (1, 2)
    assert registry.champion_run_id("champ", uri) == run_id

    generator = registry.load_champion("champ", uri, cache_dir=tmp_path)
    assert Counter(generator.sample(2).column("label").to_pylist()) == {label: 2 for label in LABELS}
    assert (tmp_path / "generators" / run_id / "model.safetensors").is_file()
    same = best.best_generator("champ", tracking_uri=uri, champion=True, cache_dir=tmp_path)
    labels = np.array([0, 3])
    np.testing.assert_array_equal(same.generate(labels, seed=3), generator.generate(labels, seed=3))

    with store.global_tracking_uri(uri):  # models:/ URIs resolve through the process-wide registry URI
        model_dir = mlflow.artifacts.download_artifacts("models:/champ@champion", dst_path=str(tmp_path / "model"))
    files = {p.name for p in Path(model_dir).rglob("*")}
    assert {"MLmodel", "pyfunc_generator.py", "model.safetensors"} <= files
    assert not [name for name in files if name.endswith((".pkl", ".pickle", ".cloudpickle"))]
    model = mlflow.pyfunc.load_model(model_dir)
    frame = model.predict(pd.DataFrame({"label": ["neu", "sad"], "count": [3, 1], "seed": [5, 5]}))
    assert frame["label"].tolist() == ["neu"] * 3 + ["sad"]
    assert len(frame["features"][0]) == 8 and len(frame["features"][0][0]) == 8
    prior = model.predict(pd.DataFrame({"label": ["neu"], "count": [10], "balanced": [False]}))
    assert Counter(prior["label"]) == {"neu": 4, "hap": 3, "ang": 2, "sad": 1}

    with pytest.raises(EmodistillError, match="no version aliased 'champion'"):
        registry.load_champion("no-such-model", uri)


def test_champion_is_described_tagged_and_logged_quietly(uri, generator_dir, tmp_path, capfd, recwarn):
    parent = runs.start_parent_run("described", "sweep-desc", {}, None, uri, features="f00d")
    run_id = make_trial(uri, "described", parent, "gan_cnn · div_sml",
                        metrics={"dev_uar_ppc10": 0.55, "uar_ppc10": 0.6, "selected_step": 4},
                        generator_dir=generator_dir, tags={"variant": "div_sml", "emodistill.arch": "gan_cnn"})
    capfd.readouterr()
    model_uri = runs.log_generator_model(run_id, generator_dir, uri)
    version = registry.register_champion(run_id, "described", uri, model_uri, objective="dev_uar_ppc10")
    # MLflow's own registration prints and its warning about a model without an input example are gone.
    assert "registered" not in capfd.readouterr().err and not [w for w in recwarn if "input example" in str(w.message)]
    client = store.tracking_client(uri)
    model = client.get_registered_model("described")
    assert f'best_generator("described", tracking_uri="{uris.resolve_tracking_uri(uri)}", champion=True)' in \
        model.description
    assert model.tags == {"emodistill.objective": "dev_uar_ppc10", "emodistill.features": "f00d"}
    described = client.get_model_version("described", str(version))
    assert "Trial `gan_cnn · div_sml`" in described.description and "| 10 | 0.550 | 0.600 |" in described.description
    assert "step 4" in described.description and "`f00d`" in described.description
    assert described.tags == {"variant": "div_sml", "emodistill.arch": "gan_cnn", "emodistill.features": "f00d",
                              "emodistill.objective": "dev_uar_ppc10"}
    found = client.search_model_versions("name = 'described' and tags.variant = 'div_sml'")
    assert [int(v.version) for v in found] == [version]
    # The pyfunc model shows what it takes and what it returns.
    with store.global_tracking_uri(uri):
        info = mlflow.models.get_model_info(model_uri)
    assert [c.name for c in info.signature.outputs.inputs][-1] == "features"
    assert info.saved_input_example_info["type"] == "dataframe"


@pytest.fixture(scope="module")
def sweep(uri, generator_dir):
    """Experiment 'sweep-best' (objective dev_uar_ppc10): finished trials at dev 0.5 and 0.7 whose test scores
    disagree, a better failed and running one, one without metric."""
    parent = runs.start_parent_run("sweep-best", "sweep-b", {"objective.metric": "dev_uar_ppc10"}, None, uri)
    ids = {
        "low": make_trial(uri, "sweep-best", parent, "low", metrics={"dev_uar_ppc10": 0.5, "uar_ppc10": 0.8},
                          generator_dir=generator_dir),
        "high": make_trial(uri, "sweep-best", parent, "high", metrics={"dev_uar_ppc10": 0.7, "uar_ppc10": 0.4},
                           generator_dir=generator_dir),
        "failed": make_trial(uri, "sweep-best", parent, "failed", "FAILED", metrics={"dev_uar_ppc10": 0.9}),
        "running": make_trial(uri, "sweep-best", parent, "running", "RUNNING", metrics={"dev_uar_ppc10": 0.95}),
        "unscored": make_trial(uri, "sweep-best", parent, "unscored", metrics={"loss.g": 1.0}),
    }
    # A baseline run may score higher, but it is not a trial.
    baseline = store.tracking_client(uri).create_run(store.get_or_create_experiment("sweep-best", uri),
                                                     tags={runs.KIND_TAG: "baseline"})
    runs.log_metrics(store.tracking_client(uri), baseline.info.run_id, {"dev_uar_ppc10": 0.99}, step=0)
    return ids


def test_best_run_is_the_highest_finished_trial_by_the_recorded_objective(uri, sweep, tmp_path):
    assert best.sweep_objective("sweep-best", uri) == "dev_uar_ppc10"
    assert best.best_run("sweep-best", tracking_uri=uri).info.run_id == sweep["high"]  # chosen on dev
    for test_metric in ("uar_ppc10", "uar_real_full"):  # a test score never chooses, even when asked
        with pytest.raises(ConfigError, match=f"metric '{test_metric}': only dev scores"):
            best.best_run("sweep-best", test_metric, uri)
        with pytest.raises(ConfigError, match=f"metric '{test_metric}': only dev scores"):
            best.best_generator("sweep-best", test_metric, uri, cache_dir=tmp_path)
    generator = best.best_generator("sweep-best", tracking_uri=uri, cache_dir=tmp_path)
    assert generator.label_names == LABELS
    assert sorted(p.name for p in (tmp_path / "generators" / sweep["high"]).iterdir()) == [
        "config.json", "model.safetensors"]


def test_the_python_api_names_a_bad_argument_and_wraps_mlflow_errors(uri, sweep, tmp_path):
    with pytest.raises(ConfigError, match="metric: expected a metric's name"):
        best.best_generator("sweep-best", 3, uri, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="experiment: expected an experiment's name, got int"):
        best.best_generator(5, tracking_uri=uri, cache_dir=tmp_path)
    for ppc in (0, True, "10"):
        with pytest.raises(ConfigError, match="ppc: expected a budget of utterances per class"):
            best.best_distilled_set("sweep-best", ppc, tracking_uri=uri)
    store_folder = f"file://{tmp_path}/mlruns"  # a store MLflow 3 refuses to open: its error, named after the store
    with pytest.raises(EmodistillError, match=f"^tracking store {store_folder}: "):
        best.best_generator("sweep-best", tracking_uri=store_folder, cache_dir=tmp_path)


def test_best_run_errors_name_what_exists(uri, sweep):
    with pytest.raises(EmodistillError, match=r"no experiment 'nope'.*existing: \[.*'sweep-best'"):
        best.best_run("nope", tracking_uri=uri)
    with pytest.raises(EmodistillError, match=r"no finished trial has metric 'dev_uar_ppc1'.*'FAILED': 1.*"
                                              r"\['dev_uar_ppc10', 'loss.g', 'uar_ppc10'\]"):
        best.best_run("sweep-best", "dev_uar_ppc1", uri)


def test_best_run_over_folds_is_the_champion_rule(uri):
    """On several folds the best single trial (dev 0.9 on an easy fold) is not the champion: the setting with the
    best mean dev objective over every fold is, and its best trial; a setting missing a fold comes after."""
    parent = runs.start_parent_run("folds-best", "folds-b", {"objective.metric": "dev_uar_ppc10"}, None, uri)
    client = store.tracking_client(uri)
    experiment_id = store.get_or_create_experiment("folds-best", uri)
    dev = {("baseline", 1): 0.9, ("baseline", 2): 0.3, ("sml", 1): 0.7, ("sml", 2): 0.72, ("div", 1): 0.95}
    ids = {}
    for (variant, fold), value in dev.items():
        run_id = runs.start_trial_run(client, experiment_id, parent, f"gan_cnn · {variant} · fold {fold}",
                                      {"fold": fold})
        runs.log_metrics(client, run_id, {"dev_uar_ppc10": value, "uar_ppc10": 1 - value}, step=0)
        runs.finish_run(client, run_id, "FINISHED")
        ids[variant, fold] = run_id
    trials = runs.sweep_runs(client, experiment_id, parent, "trial")
    assert champion_trial(trials, "dev_uar_ppc10").info.run_id == ids["sml", 2]  # what the sweep registers
    assert best.best_run("folds-best", tracking_uri=uri).info.run_id == ids["sml", 2]


def test_a_tie_goes_to_the_trial_the_sweep_started_first(uri):
    parent = runs.start_parent_run("ties", "ties", {"objective.metric": "dev_uar_ppc10"}, None, uri)
    client = store.tracking_client(uri)
    experiment_id = store.get_or_create_experiment("ties", uri)
    for trial_id in ("ab_00001", "ab_00000", "ab_00002"):  # logged out of order, as concurrent trials may be
        run_id = runs.start_trial_run(client, experiment_id, parent, trial_id, {}, {"ray.trial_id": trial_id})
        runs.log_metrics(client, run_id, {"dev_uar_ppc10": 0.5}, step=0)
        runs.finish_run(client, run_id, "FINISHED")
    trials = runs.sweep_runs(client, experiment_id, parent, "trial")
    for order in (trials, trials[::-1]):
        assert champion_trial(order, "dev_uar_ppc10").data.tags["ray.trial_id"] == "ab_00000"
    assert best.best_run("ties", tracking_uri=uri).data.tags["ray.trial_id"] == "ab_00000"


def test_cli_best_refuses_a_test_metric(uri, sweep, capsys):
    assert main(["best", "--experiment", "sweep-best", "--metric", "uar_ppc10", "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err.strip()
    assert "metric 'uar_ppc10': only dev scores (dev_*) choose a trial" in err and len(err.splitlines()) == 1


def test_reading_a_missing_store_names_it_and_creates_nothing(tmp_path):
    missing = tmp_path / "typo" / "mlruns.db"
    for read in (lambda: best.best_run("sweep-best", tracking_uri=f"sqlite:///{missing}"),
                 lambda: best.best_generator("sweep-best", tracking_uri=f"sqlite:///{missing}", champion=True)):
        with pytest.raises(EmodistillError, match=f"tracking store {missing} does not exist"):
            read()
    assert not (tmp_path / "typo").exists()


def _foreign_sqlite(path: Path) -> None:
    """A real SQLite database of some other program."""
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
        db.commit()


@pytest.mark.parametrize("make, problem", [
    (lambda path: path.write_bytes(b""), "is empty (0 bytes)"),
    (lambda path: path.write_bytes(bytes(range(256)) * 16), "is not an SQLite database"),
    (lambda path: path.write_bytes(uris.SQLITE_HEADER + bytes(range(256)) * 16),
     "is not a readable SQLite database (file is not a database)"),
    (_foreign_sqlite, "holds no MLflow schema (no table alembic_version, experiments, runs)"),
])
def test_read_commands_refuse_a_file_that_is_not_a_store_and_leave_it_alone(tmp_path, capsys, make, problem):
    path = tmp_path / "mlruns.db"
    make(path)
    before = path.read_bytes()
    uri = f"sqlite:///{path}"
    out = str(tmp_path / "s.arrow")
    for args in (["best", "--experiment", "x"], ["sample", "--experiment", "x", "--ppc", "1", "--out", out],
                 ["sample", "--experiment", "x", "--champion", "--ppc", "1", "--out", out], ["ui", "--port", "1"]):
        assert main(args + ["--tracking-uri", uri]) == 2
        err = capsys.readouterr().err
        assert f"tracking store {path} {problem}: expected an MLflow sqlite store" in err and err.count("\n") == 1, err
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["mlruns.db"]


def test_ui_on_a_store_that_does_not_exist_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "typo" / "mlruns.db"
    assert main(["ui", "--tracking-uri", f"sqlite:///{missing}", "--port", "1"]) == 2
    assert f"tracking store {missing} does not exist: expected an MLflow sqlite store (check --tracking-uri, " \
           "or pass --create to start a new store)" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


def test_read_commands_fail_fast_on_a_tracking_server_that_is_down(tmp_path, capsys, monkeypatch):
    for name in store.FAIL_FAST_HTTP:
        monkeypatch.delenv(name, raising=False)
    uri = f"http://127.0.0.1:{free_port()}"  # bound, then closed: nothing listens there
    out = str(tmp_path / "s.arrow")
    for args in (["best", "--experiment", "x"], ["sample", "--experiment", "x", "--ppc", "1", "--out", out],
                 ["sample", "--experiment", "x", "--champion", "--ppc", "1", "--out", out]):
        started = time.monotonic()
        assert main(args + ["--tracking-uri", uri]) == 2
        assert time.monotonic() - started < 30  # MLflow's own retries took 255 s
        err = capsys.readouterr().err
        assert f"tracking server {uri} does not answer (ConnectionError after 2 retries)" in err, err
        assert err.count("\n") == 1
    assert not set(store.FAIL_FAST_HTTP) & set(os.environ)  # scoped to the command


def test_the_python_api_gives_up_on_a_server_that_accepts_and_never_answers(tmp_path, monkeypatch):
    for name in store.FAIL_FAST_HTTP:
        monkeypatch.delenv(name, raising=False)
    with SilentServer() as silent:
        for read in (lambda: best.best_generator("x", tracking_uri=silent.url, cache_dir=tmp_path),
                     lambda: best.best_generator("x", tracking_uri=silent.url, champion=True, cache_dir=tmp_path),
                     lambda: store.check_server(silent.url)):
            with pytest.raises(EmodistillError, match=f"tracking server {silent.url} does not answer"):
                read()
        assert silent.accepted
    assert not set(store.FAIL_FAST_HTTP) & set(os.environ)  # scoped to the call


def test_a_trial_s_requests_are_bounded_but_the_user_s_settings_win(monkeypatch):
    for name in store.TRIAL_HTTP:
        monkeypatch.setenv(name, "")  # recorded, so that the test leaves the environment as it was
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "300")
    store.bound_trial_requests()
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "300"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5" and os.environ["AWS_MAX_ATTEMPTS"] == "3"


def test_cli_best_and_sample(uri, sweep, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EMODISTILL_CACHE", str(tmp_path / "cache"))
    assert main(["best", "--experiment", "sweep-best", "--json", "--tracking-uri", uri]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["run_id"] == sweep["high"] and shown["run_name"] == "high" and shown["value"] == 0.7
    assert shown["metric"] == "dev_uar_ppc10"  # the objective the sweep recorded
    assert shown["params"] == {"loss.tau": "0.1"} and shown["metrics"]["uar_ppc10"] == 0.4

    out = tmp_path / "synthetic.arrow"
    assert main(["sample", "--experiment", "sweep-best", "--ppc", "3", "--imbalanced", "--seed", "1",
                 "--out", str(out), "--tracking-uri", uri]) == 0
    assert "wrote 12 synthetic utterances" in capsys.readouterr().out
    table = read_table(out)
    assert Counter(table.column("label").to_pylist()) == {"neu": 5, "hap": 4, "ang": 2, "sad": 1}
    assert set(table.column("speaker").to_pylist()) == {"synthetic"}

    assert main(["best", "--experiment", "nope", "--tracking-uri", uri]) == 2
    assert "no experiment 'nope'" in capsys.readouterr().err
    assert main(["sample", "--experiment", "sweep-best", "--ppc", "1", "--out", str(tmp_path),
                 "--tracking-uri", uri]) == 2
    assert f"{tmp_path}: is a folder (expected the name of the Arrow file to write)" in capsys.readouterr().err


def _stored(uri: str, run_id: str, name: str) -> Path:
    """A run's generator file in the local artifact store (where a server's artifact upload would land)."""
    artifact_uri = store.tracking_client(uri).get_run(run_id).info.artifact_uri
    return Path(artifact_uri.removeprefix("file://")) / "generator" / name


def test_generator_files_are_checked_against_the_digests_the_run_recorded(uri, generator_dir, tmp_path):
    parent = runs.start_parent_run("digests", "sweep-d", {}, None, uri)
    run_id = make_trial(uri, "digests", parent, "trial_0", metrics={"dev_uar_ppc100": 0.5},
                        generator_dir=generator_dir)
    tags = store.tracking_client(uri).get_run(run_id).data.tags
    assert tags["emodistill.sha256.model.safetensors"] == file_sha256(generator_dir / "model.safetensors")
    cache = tmp_path / "cache"
    cached = runs.download_generator(run_id, uri, cache)
    # A corrupt cached copy is not trusted: it is fetched again.
    (cached / "model.safetensors").write_bytes(b"not the weights")
    again = runs.download_generator(run_id, uri, cache)
    assert file_sha256(again / "model.safetensors") == tags["emodistill.sha256.model.safetensors"]
    # A file replaced in the store after the run logged it is refused, with the file named.
    _stored(uri, run_id, "config.json").write_text(_stored(uri, run_id, "config.json").read_text() + " ")
    (again / "config.json").unlink()
    with pytest.raises(IntegrityError, match=r"generator/config.json in .* does not match the SHA-256 recorded"):
        runs.download_generator(run_id, uri, cache)
    with pytest.raises(IntegrityError):
        best.best_generator("digests", tracking_uri=uri, cache_dir=tmp_path / "other")
    # A run that recorded no digests cannot be verified, so it is not loaded.
    bare = store.tracking_client(uri).create_run(store.get_or_create_experiment("digests", uri)).info.run_id
    with pytest.raises(IntegrityError, match="records no SHA-256"):
        runs.download_generator(bare, uri, cache)


def test_a_champion_whose_code_was_replaced_is_refused(uri, generator_dir, tmp_path):
    parent = runs.start_parent_run("champ-code", "sweep-cc", {}, None, uri)
    run_id = make_trial(uri, "champ-code", parent, "trial_0", generator_dir=generator_dir)
    registry.register_champion(run_id, "champ-code", uri, runs.log_generator_model(run_id, generator_dir, uri))
    assert registry.load_champion("champ-code", uri, cache_dir=tmp_path).label_names == LABELS
    client = store.tracking_client(uri)
    version = client.get_model_version_by_alias("champ-code", "champion")
    location = client.get_logged_model(version.source.removeprefix("models:/")).artifact_location
    code = Path(location.removeprefix("file://")) / "pyfunc_generator.py"
    code.write_text(code.read_text() + "\nimport os  # planted\n")
    with pytest.raises(IntegrityError, match=r"champ-code@champion: its code pyfunc_generator.py .* was replaced"):
        registry.load_champion("champ-code", uri, cache_dir=tmp_path)


def test_a_version_description_shows_the_scores_of_the_decoder_that_chose(uri):
    parent = runs.start_parent_run("by-head", "sweep-by-head", {}, None, uri)
    client = store.tracking_client(uri)
    run_id = runs.start_trial_run(client, store.get_or_create_experiment("by-head", uri), parent, "gan_att", {}, {})
    runs.log_metrics(client, run_id, {"dev_uar_ppc10": 0.31, "uar_ppc10": 0.32, "dev_uar_ppc10_mean_std_mlp": 0.51,
                                      "uar_ppc10_mean_std_mlp": 0.52}, step=4)
    described = registry.version_description(client.get_run(run_id), "dev_uar_ppc10_mean_std_mlp")
    assert "chosen by `dev_uar_ppc10_mean_std_mlp` = 0.510" in described
    assert "| dev UAR (mean_std_mlp decoder) | test UAR (mean_std_mlp decoder) |" in described
    assert "| 10 | 0.510 | 0.520 |" in described
    assert "| 10 | 0.310 | 0.320 |" in registry.version_description(client.get_run(run_id), "dev_uar_ppc10")


def test_a_version_description_names_the_fold_its_trial_trained_on(uri):
    parent = runs.start_parent_run("folded", "sweep-folded", {}, None, uri, features="f00d")
    client = store.tracking_client(uri)
    run_id = runs.start_trial_run(client, store.get_or_create_experiment("folded", uri), parent, "gaussian",
                                  {FOLD_PARAM: 2}, {runs.FEATURES_TAG: "beef"})
    described = registry.version_description(client.get_run(run_id), None)
    assert "Features: fingerprint `beef`, fold 2 (tested on session 2, trained on the others)." in described
