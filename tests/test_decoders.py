"""The decoder family (s3prl's emotion heads, chosen by name): shapes, masking, training, saving and loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emodistill.downstream import (DECODERS, DownstreamConfig, build_downstream, load_downstream, predict,
                                   save_downstream, teacher_probabilities, train_downstream, uar)
from emodistill.errors import ConfigError
from evaluate_helpers import DIM, toy_splits

NAMES = sorted(DECODERS)


@pytest.fixture(scope="module")
def splits():
    return toy_splits()


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_padding_do_not_change_an_utterance(name):
    torch.manual_seed(0)
    model = build_downstream(name, DIM, 4, hidden=16).eval()
    x = torch.randn(3, 23, DIM)
    mask = torch.ones(3, 23, dtype=torch.bool)
    mask[1, 11:] = False
    logits = model(x, mask)
    assert logits.shape == (3, 4) and model.embed(x, mask).shape == (3, 16)
    # Utterance 1 alone, without its padding, gets the logits it got in the padded batch.
    alone = model(x[1:2, :11], torch.ones(1, 11, dtype=torch.bool))
    torch.testing.assert_close(alone, logits[1:2], atol=1e-5, rtol=1e-4)
    assert model.config() == {"decoder": name, "dim": DIM, "n_classes": 4, "hidden": 16}


@pytest.mark.parametrize("name", NAMES)
def test_each_decoder_learns_separable_data_and_round_trips(name, splits, tmp_path):
    config = DownstreamConfig(lr=3e-3, batch_size=8, max_steps=150, eval_every=50, device="cpu", hidden=16,
                              decoder=name)
    trained = train_downstream(splits["train"], splits["dev"], config, progress=False)
    assert type(trained.model) is DECODERS[name]
    pred = predict(trained.model, splits["test"], device="cpu")
    assert uar(splits["test"].labels, pred) > 0.6  # chance is 0.25: class c lifts feature c by 2.5 sd
    loaded = load_downstream(save_downstream(trained.model, tmp_path / name))
    assert type(loaded) is DECODERS[name]
    assert (predict(loaded, splits["test"], device="cpu") == pred).all()


def test_an_unknown_decoder_is_refused():
    with pytest.raises(ConfigError, match="unknown decoder 'lstm'"):
        build_downstream("lstm", DIM, 4)
    with pytest.raises(ValueError, match="decoder"):
        DownstreamConfig(decoder="lstm")


def test_soft_targets_and_noise_augmentation(splits):
    config = DownstreamConfig(lr=3e-3, batch_size=8, max_steps=60, eval_every=20, device="cpu", hidden=16)
    train = splits["train"]
    hard = train_downstream(train, splits["dev"], config, progress=False)
    one_hot = np.eye(len(train.label_names))[train.labels]
    soft = train_downstream(train, splits["dev"], config, progress=False, targets=one_hot)
    for a, b in zip(hard.model.state_dict().values(), soft.model.state_dict().values()):
        torch.testing.assert_close(a, b)  # one-hot soft labels are the hard labels
    teacher = teacher_probabilities([hard.model], train, device="cpu")
    assert teacher.shape == one_hot.shape and np.allclose(teacher.sum(axis=1), 1)
    noisy = train_downstream(train, splits["dev"], config.model_copy(update={"augment_noise": 0.5}), progress=False)
    assert not torch.equal(noisy.model.projector.weight, hard.model.projector.weight)
    assert uar(splits["test"].labels, predict(noisy.model, splits["test"], device="cpu")) > 0.6
    with pytest.raises(ConfigError, match="soft targets have shape"):
        train_downstream(train, splits["dev"], config, progress=False, targets=one_hot[:3])
