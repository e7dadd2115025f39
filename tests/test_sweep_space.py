"""Search-space files: validation messages, the bundled spaces, and how they become Tune/Optuna pieces."""

from __future__ import annotations

import optuna
import pytest
import ray
import yaml
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from emodistill.cli.main import main
from emodistill.distill.config import read_settings
from emodistill.errors import ConfigError
from emodistill.sweep.space import load_space, trial_config, trial_overrides
from emodistill.sweep.tuning import DefineByRun, param_space, tune_config
from sweep_fixtures import REPO, make_corpus_dir, make_feature_dir

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


def test_yaml_errors_are_one_line(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("name: x\nsearch: {type: grid\nevaluation: {}\n")
    with pytest.raises(ConfigError, match=r"space.yaml: not valid YAML \(while parsing a flow mapping") as refused:
        load_space(path)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("variant, problem", [
    ({"loss.lambda_dvi": 1.0}, "search.variants.div: config micro: unknown key 'loss.lambda_dvi'"),
    ({"model.arch": "gan_rnn"}, "search.variants.div: config micro: 'model.arch': Input should be 'gan_cnn', "
                                "'gan_att' or 'gaussian' (got 'gan_rnn')"),
    ({"train.eval_every": 500}, "search.variants.div: search space smoke: train.eval_every must be in 1..train.steps"),
])
def test_every_variant_is_validated_when_the_space_is_loaded(tmp_path, variant, problem):
    data = smoke_dict()
    data["search"]["variants"]["div"] = variant
    with pytest.raises(ConfigError) as refused:
        load_space(write(tmp_path, data))
    assert problem in str(refused.value) and "\n" not in str(refused.value), str(refused.value)


def test_every_grid_point_is_validated(tmp_path):
    data = smoke_dict()
    data["search"]["grid"] = {"optim.n_critic": [1, 0]}
    with pytest.raises(ConfigError, match=r"search.grid.optim.n_critic=0, search.variants.baseline: config micro: "
                                          r"'optim.n_critic': Input should be greater than 0"):
        load_space(write(tmp_path, data))


def test_a_model_that_does_not_fit_the_features_fails_the_sweep_before_ray_starts(tmp_path, capsys):
    data = smoke_dict()
    data["base"]["overrides"].update({"model.arch": "gan_att", "model.g_channels": 12})
    data["search"]["grid"] = {"model.attention_heads": [4, 8]}  # 12 channels cannot be split into 8 heads
    features = make_feature_dir(tmp_path / "features")
    # Were it not refused, the sweep would log beside its working directory: keep that in tmp_path.
    assert main(["sweep", "--space", str(write(tmp_path, data)), "--features", str(features),
                 "--tracking-uri", f"sqlite:///{tmp_path / 'mlruns.db'}", "--storage-path", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert ("search.grid.model.attention_heads=8, search.variants.baseline: model section does not fit 16-dim "
            "features, 4 classes: model: g_channels (12) must be divisible by attention_heads (8)") in err, err
    assert err.count("\n") == 1 and not ray.is_initialized()


@pytest.mark.parametrize("param, problem", [
    ({"type": "float", "low": 0.0, "high": 1.0}, "search.params.loss.tau=0.0: config paper: 'loss.tau': "
                                                 "Input should be greater than 0"),
    ({"type": "categorical", "choices": [0.5, "wide"]}, "search.params.loss.tau='wide': config paper: 'loss.tau'"),
    ({"type": "float", "low": 2.0, "high": 1.0}, "params.loss.tau.float: low (2.0) is above high (1.0)"),
    ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "params.loss.tau.float: a log scale needs low > 0"),
])
def test_every_sampled_value_is_validated_when_the_space_is_loaded(tmp_path, param, problem):
    data = yaml.safe_load((REPO / "search_spaces" / "optuna_lambdas.yaml").read_text())
    data["search"]["params"]["loss.tau"] = param
    with pytest.raises(ConfigError) as refused:
        load_space(write(tmp_path, data))
    assert problem in str(refused.value), str(refused.value)


def test_conditional_values_are_validated_with_their_conditions(tmp_path):
    data = yaml.safe_load((REPO / "search_spaces" / "optuna_lambdas.yaml").read_text())
    data["base"]["overrides"]["model.arch"] = "gan_cnn"
    data["search"]["params"]["model.attention_heads"]["choices"] = [2, "many"]
    with pytest.raises(ConfigError, match=r"search.params.model.attention_heads='many': config paper: "
                                          r"'model.attention_heads'"):
        load_space(write(tmp_path, data))


def test_base_preset_defaults_to_small(tmp_path):
    data = smoke_dict()
    data["base"].pop("preset")
    space = load_space(write(tmp_path, data))
    assert space.base.preset == "small" and trial_config(space, space.base.overrides).train.steps == 300


def test_a_bad_variant_fails_the_sweep_command_before_ray_starts(tmp_path, capsys):
    data = smoke_dict()
    data["search"]["variants"]["sml"]["loss.lamda_sml"] = 1.0
    assert main(["sweep", "--space", str(write(tmp_path, data)), "--features", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "search.variants.sml: config micro: unknown key 'loss.lamda_sml'" in err and err.count("\n") == 1
    assert not ray.is_initialized()


def test_objective_must_be_an_evaluated_budget(tmp_path):
    data = smoke_dict()
    data["objective"]["metric"] = "dev_uar_ppc100"
    with pytest.raises(ConfigError, match=r"needs budget 100 in evaluation.budgets \[10, 20\]"):
        load_space(write(tmp_path, data))


def test_objective_with_a_trailing_newline_is_refused(tmp_path):
    data = smoke_dict()
    data["objective"]["metric"] = "dev_uar_ppc20\n"
    with pytest.raises(ConfigError, match=r"objective.metric must be dev_uar_ppc<N> or dev_uar_ppc<N>_<decoder>, got "
                                         r"'dev_uar_ppc20\\n'"):
        load_space(write(tmp_path, data))


@pytest.mark.parametrize("decoders, error", [
    (["mean_std_mlp"], None),
    ([], r"'dev_uar_ppc20_mean_std_mlp' is scored by the mean_std_mlp decoder: add it to evaluation.decoders "
         r"\['linear'\]"),
])
def test_objective_may_be_another_evaluated_decoders_dev_score(tmp_path, decoders, error):
    data = smoke_dict()
    data["objective"]["metric"] = "dev_uar_ppc20_mean_std_mlp"
    data["evaluation"]["decoders"] = decoders
    if error is None:
        assert load_space(write(tmp_path, data)).objective.metric == "dev_uar_ppc20_mean_std_mlp"
    else:
        with pytest.raises(ConfigError, match=error):
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


def test_folds_must_be_sessions_of_the_features_before_ray_starts(tmp_path, capsys):
    data = {**smoke_dict(), "folds": [1, 2, 9]}
    corpus = make_corpus_dir(tmp_path / "corpus", sessions=3, per_session=4)
    args = ["sweep", "--space", str(write(tmp_path, data)), "--tracking-uri", f"sqlite:///{tmp_path / 'mlruns.db'}",
            "--storage-path", str(tmp_path), "--features"]
    assert main([*args, str(corpus)]) == 2
    err = capsys.readouterr().err
    assert "search space smoke: folds [9] are not sessions of" in err and "sessions: [1, 2, 3])" in err
    assert err.count("\n") == 1 and not ray.is_initialized()
    assert main([*args, str(make_feature_dir(tmp_path / "fixed"))]) == 2
    err = capsys.readouterr().err
    assert "folds [1, 2, 9] need features extracted with sessions" in err and err.count("\n") == 1
    assert not ray.is_initialized()


@pytest.mark.parametrize("folds, problem", [
    ([], "folds: List should have at least 1 item"),
    ([1, 1], "folds lists a fold twice: [1, 1]"),
    (["one"], "folds.0: Input should be a valid integer"),
])
def test_bad_folds_name_the_key(tmp_path, folds, problem):
    with pytest.raises(ConfigError) as refused:
        load_space(write(tmp_path, {**smoke_dict(), "folds": folds}))
    assert problem in str(refused.value)


def test_folds_are_a_grid_axis_and_not_a_config_key(tmp_path):
    space = load_space(write(tmp_path, {**smoke_dict(), "folds": [1, 2, 3, 4, 5]}))
    assert param_space(space)["fold"] == {"grid_search": [1, 2, 3, 4, 5]}
    assert "fold" not in trial_overrides(space, {"variant": "sml", "fold": 3})
    assert "fold" not in param_space(load_space(write(tmp_path, {**smoke_dict(), "folds": [2]})))
    sampled = {**smoke_dict(), "folds": [1, 2], "search": {
        "type": "random", "params": {"loss.tau": {"type": "float", "low": 0.5, "high": 1.0}}}}
    with pytest.raises(ConfigError, match="folds: a random search runs on one fold"):
        load_space(write(tmp_path, sampled))


@pytest.mark.parametrize("search", [
    {"type": "grid", "grid": {"fold": [1, 2, 3]}},
    {"type": "grid", "variants": {"a": {"variant": "b"}}},
    {"type": "random", "params": {"fold": {"type": "categorical", "choices": [1, 2]}}},
])
def test_fold_and_variant_are_not_swept_keys(tmp_path, search):
    with pytest.raises(ConfigError, match="is not a config key; list folds under 'folds:'"):
        load_space(write(tmp_path, {**smoke_dict(), "search": search}))
