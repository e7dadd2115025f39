"""Search-space files: validation messages, the bundled spaces, and how they become Tune/Optuna pieces."""

from __future__ import annotations

import optuna
import pytest
import yaml
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from emodistill.cli.main import main
from emodistill.distill.config import read_settings
from emodistill.errors import ConfigError
from emodistill.sweep.space import load_space
from emodistill.sweep.trainable import trial_config
from emodistill.sweep.tuning import DefineByRun, param_space, trial_overrides, tune_config
from sweep_fixtures import REPO

SPACES = sorted((REPO / "search_spaces").glob("*.yaml"))


def write(tmp_path, data: dict):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def smoke_dict() -> dict:
    return yaml.safe_load((REPO / "search_spaces" / "smoke.yaml").read_text())


def test_bundled_spaces_are_valid_and_build_trial_configs():
    assert {p.stem for p in SPACES} == {"smoke", "paper_ablation", "optuna_lambdas"}
    for path in SPACES:
        space = load_space(path)
        config = trial_config(space, dict(space.base.overrides))
        assert config.train.checkpoint_every == config.train.eval_every > 0


def test_a_base_config_file_is_read_once_where_the_space_is_loaded(tmp_path, monkeypatch):
    """Trials on other nodes, and a sweep resumed elsewhere, build their configs without the driver's file."""
    settings = read_settings("micro")
    settings["model"]["arch"] = "gan_att"
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(settings))
    data = smoke_dict()
    data["base"]["preset"] = "base.yaml"
    monkeypatch.chdir(tmp_path)
    space = load_space(write(tmp_path, data))
    (tmp_path / "base.yaml").unlink()
    monkeypatch.chdir(REPO)
    resumed = type(space).model_validate(space.model_dump(mode="json"))  # as sweep.json gives it back
    config = trial_config(resumed, trial_overrides(resumed, {"variant": "sml"}))
    assert (config.model.arch, config.loss.lambda_sml) == ("gan_att", 1.0)
    assert config.train.steps == data["base"]["overrides"]["train.steps"]


def test_typo_names_the_bad_key(tmp_path):
    data = smoke_dict()
    data["max_concurent_trials"] = 2
    with pytest.raises(ConfigError, match=r"space.yaml: max_concurent_trials: Extra inputs"):
        load_space(write(tmp_path, data))
    data = smoke_dict()
    data["resources"]["gpus"] = 1
    with pytest.raises(ConfigError, match=r"resources.gpus"):
        load_space(write(tmp_path, data))


def test_objective_must_be_an_evaluated_budget(tmp_path):
    data = smoke_dict()
    data["objective"]["metric"] = "dev_uar_ppc100"
    with pytest.raises(ConfigError, match=r"needs budget 100 in evaluation.budgets \[10, 20\]"):
        load_space(write(tmp_path, data))


def test_objective_may_not_read_the_test_split(tmp_path):
    data = smoke_dict()
    data["objective"]["metric"] = "uar_ppc20"
    with pytest.raises(ConfigError, match=r"'uar_ppc20' is a score on the test split.*its dev twin 'dev_uar_ppc20'"):
        load_space(write(tmp_path, data))


def test_pool_cannot_be_searched(tmp_path):
    data = smoke_dict()
    data["search"]["variants"]["baseline"]["pool.k"] = 3
    with pytest.raises(ConfigError, match=r"may not vary 'pool\.\*'"):
        load_space(write(tmp_path, data))


def test_condition_must_refer_to_an_earlier_param(tmp_path):
    data = yaml.safe_load((REPO / "search_spaces" / "optuna_lambdas.yaml").read_text())
    params = data["search"]["params"]
    data["search"]["params"] = {"model.attention_heads": params["model.attention_heads"],
                                "model.arch": params["model.arch"]}
    with pytest.raises(ConfigError, match=r"when refers to \['model.arch'\]"):
        load_space(write(tmp_path, data))


def test_paper_ablation_grid_is_table_2():
    space = load_space(REPO / "search_spaces" / "paper_ablation.yaml")
    grid = param_space(space)
    assert grid["model.arch"]["grid_search"] == ["gan_cnn", "gan_att"]
    assert grid["variant"]["grid_search"] == ["baseline", "div", "sml", "div_sml"]
    baseline = trial_config(space, trial_overrides(space, {"variant": "baseline", "model.arch": "gan_att"}))
    assert baseline.loss.lambda_div == baseline.loss.lambda_sml == 0.0
    assert baseline.model.arch == "gan_att"
    both = trial_config(space, trial_overrides(space, {"variant": "div_sml", "model.arch": "gan_cnn"}))
    assert both.loss.lambda_div > 0 and both.loss.lambda_sml > 0
    assert space.evaluation.budgets_for("gan_cnn") == [50, 100]
    assert space.evaluation.budgets_for("gan_att") == [50, 100, 800, 1800]


def test_optuna_space_is_seeded_conditional_and_asha_stopped():
    space = load_space(REPO / "search_spaces" / "optuna_lambdas.yaml")
    config = tune_config(space, rounds=10)
    assert isinstance(config.search_alg, OptunaSearch) and isinstance(config.scheduler, ASHAScheduler)
    assert (config.metric, config.mode, config.num_samples) == ("dev_uar_ppc100", "max", 40)

    def draw(seed_shift: int = 0):
        sampler = optuna.samplers.TPESampler(seed=space.search.seed + seed_shift)
        study = optuna.create_study(sampler=sampler, direction="maximize")
        define = DefineByRun(space.search.params)
        study.optimize(lambda trial: define(trial) or 0.0, n_trials=12)
        return [t.params for t in study.trials]

    trials = draw()
    assert trials == draw()  # seeded
    assert trials != draw(seed_shift=1)
    for params in trials:
        assert ("model.attention_heads" in params) == (params["model.arch"] == "gan_att")
        assert 0.01 <= params["loss.lambda_sml"] <= 10.0
        assert trial_config(space, trial_overrides(space, params)).optim.n_critic == params["optim.n_critic"]


def test_sweep_command_names_what_is_missing(tmp_path, capsys):
    assert main(["sweep", "--features", str(tmp_path)]) == 2
    assert "sweep needs --space FILE and --features DIR (or --resume DIR|URI)" in capsys.readouterr().err
    assert main(["sweep", "--resume", str(tmp_path)]) == 2
    assert f"{tmp_path}/sweep.json: missing, so {tmp_path} is not a sweep directory" in capsys.readouterr().err
