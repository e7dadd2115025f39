"""`emodistill distill` on a toy feature directory."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emodistill import generator
from emodistill.cli.main import main
from sweep_fixtures import make_corpus_dir, make_feature_dir

MICRO = ["--set", "model.frames=16", "--set", "optim.batch_size=8", "--set", "optim.n_critic=1",
         "--set", "train.steps=2", "--set", "train.device=cpu"]


def test_distill_command_writes_a_generator(tmp_path, capsys):
    features = make_feature_dir(tmp_path / "features")
    code = main(["distill", "--features", str(features), "--config", "micro", *MICRO, "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0
    assert "config (micro):" in out and "lambda_sml: 0.0" in out
    assert f"generator written to {tmp_path / 'run' / 'generator'}" in out and "parameters" in out
    assert generator.load(tmp_path / "run" / "generator").config["metrics"]["steps"] == 2


def test_distill_command_rejects_a_typo(tmp_path, capsys):
    features = make_feature_dir(tmp_path / "features")
    code = main(["distill", "--features", str(features), "--config", "micro", "--set", "loss.lamda_sml=1"])
    assert code == 2
    assert "unknown key 'loss.lamda_sml'" in capsys.readouterr().err


@pytest.mark.parametrize("decoder, metric", [("linear", "dev_uar_ppc3"), ("mean_std_mlp", "dev_uar_ppc3_mean_std_mlp")])
def test_distill_command_chooses_its_checkpoint_on_dev(tmp_path, capsys, decoder, metric):
    features = make_feature_dir(tmp_path / "features")
    code = main(["distill", "--features", str(features), "--config", "micro", *MICRO, "--set", "train.steps=4",
                 "--set", "train.eval_every=2", "--select-ppc", "3", "--select-draws", "2",
                 "--select-downstream-steps", "4", "--select-decoder", decoder, "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0
    metrics = generator.load(tmp_path / "run" / "generator").config["metrics"]
    assert metrics["selected_step"] in (2, 4) and metrics["selected_by"] == metric
    assert 0.0 <= metrics[metric] <= 1.0
    assert not any(key.startswith("uar_") for key in metrics)  # nothing read the test split
    assert f"chosen at step {metrics['selected_step']} of 4 by {metric}" in out


def test_distill_command_rejects_a_zero_selection_budget(tmp_path, capsys):
    features = make_feature_dir(tmp_path / "features")
    assert main(["distill", "--features", str(features), "--config", "micro", "--select-ppc", "0"]) == 2
    assert "--select-ppc must be >= 1, got 0" in capsys.readouterr().err


def test_distill_command_trains_on_the_fold_it_is_given_and_resumes_only_on_it(tmp_path, capsys):
    features = make_corpus_dir(tmp_path / "features", sessions=3, per_session=8)
    run = ["distill", "--features", str(features), "--config", "micro", *MICRO, "--out", str(tmp_path / "run")]
    assert main([*run, "--fold", "2", "--set", "train.checkpoint_every=1"]) == 0
    capsys.readouterr()
    trained_on = generator.load(tmp_path / "run" / "generator").config["feature_meta"]
    assert trained_on["corpus"] == "toy"
    # A resume on another fold (other training utterances) is refused in one line; on the same fold it goes on.
    assert main([*run, "--fold", "3", "--resume", "--set", "train.steps=3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "resume with the feature folder (and fold) it was trained on" in err
    assert main([*run, "--fold", "2", "--resume", "--set", "train.steps=3"]) == 0
    assert generator.load(tmp_path / "run" / "generator").config["metrics"]["steps"] == 3


def test_distill_command_fold_errors_are_one_line(tmp_path, capsys):
    folds = make_corpus_dir(tmp_path / "folds", sessions=3, per_session=8)
    assert main(["distill", "--features", str(folds), "--config", "micro", "--fold", "4"]) == 2
    assert "folds: no fold 4 (fold K tests on session K; sessions: [1, 2, 3])" in capsys.readouterr().err
    fixed = make_feature_dir(tmp_path / "fixed")
    assert main(["distill", "--features", str(fixed), "--config", "micro", "--fold", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "its splits were fixed when it was extracted" in err


def test_distill_command_keeps_a_finished_run_unless_told_and_resumes_only_with_the_same_selection(tmp_path, capsys):
    features = make_feature_dir(tmp_path / "features")
    run = ["distill", "--features", str(features), "--config", "micro", *MICRO, "--set", "train.eval_every=2",
           "--set", "train.checkpoint_every=2", "--select-ppc", "3", "--select-draws", "1",
           "--select-downstream-steps", "2", "--out", str(tmp_path / "run")]
    assert main(run) == 0
    weights = (tmp_path / "run" / "generator" / generator.WEIGHTS_FILE).read_bytes()
    capsys.readouterr()
    assert main(run) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds a run (generator and checkpoints)" in err and "--overwrite" in err
    assert (tmp_path / "run" / "generator" / generator.WEIGHTS_FILE).read_bytes() == weights
    longer = [*run, "--set", "train.steps=4", "--resume"]
    assert main([*longer, "--select-ppc", "4"]) == 2
    assert "cannot resume, the checkpoint was chosen on dev with" in capsys.readouterr().err
    assert main([*longer, "--select-draws", "2"]) == 2
    assert "'draws': 1" in capsys.readouterr().err
    assert main([*longer, "--select-decoder", "linear"]) == 2  # the default is mean_std_mlp
    assert "dev_uar_ppc3_mean_std_mlp" in capsys.readouterr().err
    assert main(longer) == 0
    weights = (tmp_path / "run" / "generator" / generator.WEIGHTS_FILE).read_bytes()
    capsys.readouterr()
    assert main([*run, "--resume"]) == 2  # fewer steps than the checkpoint's: it would record them for its weights
    assert "the checkpoint is at step 4, past train.steps 2" in capsys.readouterr().err
    assert (tmp_path / "run" / "generator" / generator.WEIGHTS_FILE).read_bytes() == weights
    assert main([*run, "--overwrite"]) == 0


def test_a_sigterm_mid_run_unwinds_like_ctrl_c(tmp_path):
    """A service manager's SIGTERM runs the command's clean-up (exit 143); it used to end the process on the spot."""
    features = make_feature_dir(tmp_path / "features")
    run = tmp_path / "run"
    command = [str(Path(sys.executable).with_name("emodistill")), "distill", "--features", str(features), "--config",
               "micro", *MICRO, "--set", "train.steps=100000", "--set", "train.checkpoint_every=1", "--out", str(run)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while not (run / "checkpoints" / "checkpoint.pt").exists():  # training, inside the command
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not [p.name for p in run.rglob("*") if p.name.startswith(".")]  # no temporary file left
