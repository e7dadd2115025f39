"""DistillConfig: presets, dotted overrides, validation messages, flattening."""

from __future__ import annotations

import json

import pytest

from emodistill.distill import DistillConfig, load_config
from emodistill.distill.config import preset_names
from emodistill.errors import ConfigError


def test_presets_load_and_resolve_against_a_table():
    assert preset_names() == ["micro", "paper", "small"]
    for name in preset_names():
        model = load_config(name).model_for(dim=80, n_classes=4)
        assert model.dim == 80 and model.n_classes == 4
    paper = load_config("paper")
    assert (paper.model.arch, paper.model.frames, paper.model.g_channels) == ("gan_att", 200, 128)
    assert paper.loss.lambda_gp == 10 and paper.optim.n_critic == 5


def test_defaults_are_the_paper_baseline():
    config = DistillConfig()
    assert config.loss.lambda_div == config.loss.lambda_sml == 0.0
    assert config.optim.betas == (0.5, 0.9)


def test_overrides_are_parsed_as_yaml_values():
    config = load_config("micro", ["loss.lambda_sml=0.5", "optim.betas=[0.0, 0.99]", "pool.points=[early, 0.3]",
                                   "train.precision=bf16", "pool.downstream.patience=null"])
    assert config.loss.lambda_sml == 0.5
    assert config.optim.betas == (0.0, 0.99)
    assert config.pool.points == ["early", 0.3]
    assert config.train.precision == "bf16"
    assert config.pool.downstream.patience is None


@pytest.mark.parametrize("override, message", [
    ("loss.lamda_sml=1", "unknown key 'loss.lamda_sml'"),
    ("modle.arch=gan_cnn", "unknown key 'modle'"),
    ("model.arch=gan_rnn", "'model.arch'"),
    ("optim.betas=[0.5, 1.5]", "'optim.betas'"),
    ("train.device=tpu9", "'train.device'"),
    ("pool.points=[1.5]", "'pool.points'"),
    ("loss.lambda_div=-1", "'loss.lambda_div'"),
    ("loss.lambda_div", "expected key=value"),
    ("model.arch.x=1", "'arch' is not a section"),
    ("loss.tau.x=1", "'loss.tau'"),
])
def test_bad_values_name_the_field(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config("micro", [override])


def test_architecture_constraints_surface_when_the_table_is_known():
    config = load_config("micro", ["model.g_channels=10"])
    with pytest.raises(ConfigError, match="multiple of 4"):
        config.model_for(dim=80, n_classes=4)


@pytest.mark.parametrize("overrides, dim, problem", [
    (["model.arch=gan_att", "model.g_channels=12", "model.attention_heads=8"], 80,
     "model: g_channels (12) must be divisible by attention_heads (8) for gan_att"),
    ([], 4, "model.dim: Input should be greater than or equal to 8"),
])
def test_model_errors_are_one_line_naming_the_field(overrides, dim, problem):
    config = load_config("micro", overrides)
    with pytest.raises(ConfigError) as refused:
        config.model_for(dim=dim, n_classes=4)
    message = str(refused.value)
    assert "\n" not in message and problem in message, message


def test_yaml_errors_are_one_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("model:\n  frames: [48\nloss: {}\n")
    for source, overrides in ((tmp_path / "bad.yaml", []), ("micro", ["loss.tau=[1"])):
        with pytest.raises(ConfigError, match="not valid YAML") as refused:
            load_config(source, overrides)
        assert "\n" not in str(refused.value)


def test_files_json_and_yaml(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"model": {"frames": 48}, "train": {"steps": 7}}))
    assert load_config(tmp_path / "run.json").train.steps == 7
    (tmp_path / "run.yaml").write_text("model:\n  frames: 48\nloss:\n  tau: 2\n")
    assert load_config(str(tmp_path / "run.yaml"), ["loss.tau=3"]).loss.tau == 3.0
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="not a preset"):
        load_config(tmp_path / "missing.yaml")


def test_flatten_uses_dotted_keys():
    flat = load_config("micro", ["loss.tau=2"]).flatten()
    assert flat["loss.tau"] == 2.0
    assert flat["model.arch"] == "gan_cnn"
    assert flat["loss.lambda_sml"] == 0.0
    assert flat["optim.betas"] == [0.5, 0.9]
    assert flat["pool.downstream.max_steps"] == 40
    assert not any(isinstance(v, dict) for v in flat.values())


@pytest.mark.parametrize("override, problem", [
    ("loss.lambda_sml=.inf", "'loss.lambda_sml': Input should be a finite number (got inf)"),
    ("optim.lr_g=.nan", "'optim.lr_g': Input should be a finite number"),
    ("pool.downstream.lr=-.inf", "'pool.downstream.lr': Input should be a finite number"),
    ("train.device=gpu", "'train.device': device 'gpu' is not a torch device"),
])
def test_numbers_must_be_finite_and_the_device_a_torch_device(override, problem):
    with pytest.raises(ConfigError) as refused:
        load_config("micro", [override])
    message = str(refused.value)
    assert problem in message and "\n" not in message, message


def test_a_device_this_machine_lacks_validates():
    # A GPU worker's config validates on a CPU-only driver (test_distill_training: the run that would use it refuses).
    config = load_config("micro", ["train.device=cuda:99"])  # no machine has 100 GPUs
    assert DistillConfig.model_validate(config.model_dump(mode="json")).train.device == "cuda:99"


def test_json_config_refuses_duplicate_keys_and_deep_nesting(tmp_path):
    (tmp_path / "dup.json").write_text('{"train": {"steps": 3}, "train": {"steps": 100000}}')
    with pytest.raises(ConfigError, match="dup.json: duplicate key 'train'"):
        load_config(tmp_path / "dup.json")
    (tmp_path / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ConfigError, match=r"deep.json: not valid JSON \(nested too deeply\)"):
        load_config(tmp_path / "deep.json")
    (tmp_path / "big.json").write_text('{"train": {"steps": 3}, "pad": "' + "x" * 2**21 + '"}')
    with pytest.raises(ConfigError, match=r"big.json: \d+ bytes, more than the 1048576 a JSON config may hold"):
        load_config(tmp_path / "big.json")
