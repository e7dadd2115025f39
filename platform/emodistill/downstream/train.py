"""Train the SUPERB downstream on a FeatureSet (real or synthetic) and select the checkpoint by dev UAR."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, NonNegativeFloat, PositiveFloat
from tqdm.auto import tqdm

from emodistill.downstream.batching import Batch, eval_batches, train_batches
from emodistill.downstream.metrics import uar
from emodistill.downstream.model import DEFAULT_DECODER, DecoderName, Downstream, build_downstream
from emodistill.errors import ConfigError, FeatureTableError, TrainingDiverged
from emodistill.features.dataset import FeatureSet
from emodistill.runtime import DeviceName, resolve_device
from emodistill.strict import FROZEN_CONFIG, PositiveInt, Seed

log = logging.getLogger(__name__)


class DownstreamConfig(BaseModel):
    """Hyper-parameters of the downstream recipe (defaults: s3prl's emotion config, effective batch 32)."""

    model_config = FROZEN_CONFIG

    lr: PositiveFloat = 1e-4
    batch_size: PositiveInt = 32
    max_steps: PositiveInt = 30000
    eval_every: PositiveInt = 1000
    grad_clip: PositiveFloat | None = 1.0
    patience: PositiveInt | None = None  # evaluations without a dev improvement before stopping; None: never stop early
    seed: Seed = 0
    device: DeviceName = "auto"
    max_frames: PositiveInt | None = None  # random crop of longer training utterances
    hidden: PositiveInt = 256
    decoder: DecoderName = DEFAULT_DECODER  # the head (downstream/model.py); the L_SML pool's is `linear`
    # Beyond s3prl's recipe (0, off, by default): feature-space augmentation, Gaussian noise added to every training
    # frame with this standard deviation in units of each dimension's std over the training set.
    augment_noise: NonNegativeFloat = 0.0


@dataclass
class DownstreamResult:
    """A trained downstream (best dev UAR, eval mode, on CPU) and how it got there."""

    model: Downstream
    best_step: int
    dev_uar: float
    train_seconds: float  # wall time until the selected checkpoint was reached
    total_seconds: float
    steps: int  # steps actually run (fewer than max_steps after an early stop)
    snapshots: list[dict[str, torch.Tensor]] = field(default_factory=list)  # at the snapshot_steps reached


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _check_compatible(train: FeatureSet, dev: FeatureSet) -> None:
    if len(train) == 0 or len(dev) == 0:
        raise FeatureTableError(f"downstream training needs utterances in train and dev, got {len(train)}, {len(dev)}")
    if train.dim != dev.dim:
        raise FeatureTableError(f"train frames have dim {train.dim} but dev frames have dim {dev.dim}")
    if train.label_names != dev.label_names:
        raise FeatureTableError(f"train labels {train.label_names} differ from dev labels {dev.label_names}")


def _check_snapshot_steps(steps: Iterable[int], max_steps: int) -> set[int]:
    steps = set(steps)
    outside = sorted(s for s in steps if not 1 <= s <= max_steps)
    if outside:
        raise ConfigError(f"snapshot_steps {outside} are outside 1..max_steps ({max_steps})")
    return steps


def _train_step(model: Downstream, optimizer: torch.optim.Optimizer, batch: Batch, grad_clip: float | None,
                targets: torch.Tensor | None = None) -> float:
    """One Adam step on the cross-entropy of a batch (against its rows of `targets`, class probabilities per training
    utterance, when given); returns the loss (checked before the update)."""
    y = batch.y if targets is None else targets[torch.from_numpy(batch.index)]
    loss = F.cross_entropy(model(batch.x, batch.mask), y)
    value = loss.item()
    if not math.isfinite(value):
        return value
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return value


@torch.enable_grad()  # it trains: callers may sit in no_grad (a distillation eval hook)
def train_downstream(train: FeatureSet, dev: FeatureSet, config: DownstreamConfig,
                     snapshot_steps: Iterable[int] = (), progress: bool = True,
                     targets: np.ndarray | None = None) -> DownstreamResult:
    """Adam + cross-entropy with gradient clipping; evaluate dev UAR every eval_every steps and keep the best.

    `targets` (N, C): soft labels, a probability vector per training utterance to learn instead of its label
    (e.g. teacher_probabilities); with config.augment_noise, Gaussian noise is added to the training frames.
    """
    _check_compatible(train, dev)
    if targets is not None and np.shape(targets) != (len(train), len(train.label_names)):
        raise ConfigError(f"soft targets have shape {np.shape(targets)}, expected ({len(train)}, "
                          f"{len(train.label_names)}): one probability per class and training utterance")
    snapshot_steps = _check_snapshot_steps(snapshot_steps, config.max_steps)
    device = resolve_device(config.device)
    with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the caller's RNG
        torch.manual_seed(config.seed)
        model = build_downstream(config.decoder, train.dim, len(train.label_names), config.hidden)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    rng = np.random.default_rng(config.seed)
    batches = train_batches(train, config.batch_size, rng, config.max_frames)
    noise = _noise_scale(train, config.augment_noise)
    soft = None if targets is None else torch.as_tensor(np.asarray(targets), dtype=torch.float32).to(device)
    # debug: the evaluation protocol trains dozens of these; its progress bar already says what runs
    log.debug("training downstream on %d utterances (dev %d), dim %d, %d classes, %d steps on %s",
              len(train), len(dev), train.dim, len(train.label_names), config.max_steps, device)

    best_uar, best_step, best_state, best_seconds = -1.0, 0, None, 0.0
    snapshots, stale, step = [], 0, 0
    start = time.perf_counter()
    with tqdm(range(1, config.max_steps + 1), desc="downstream", disable=not progress, leave=False) as bar:
        for step in bar:
            batch = next(batches)
            if noise is not None:
                batch = replace(batch, x=batch.x + noise * torch.from_numpy(rng.standard_normal(batch.x.shape,
                                                                                                dtype=np.float32)))
            loss = _train_step(model, optimizer, batch.to(device), config.grad_clip, soft)
            if not math.isfinite(loss):
                raise TrainingDiverged(f"downstream loss is {loss} at step {step} (lr {config.lr})")
            if step in snapshot_steps:
                snapshots.append(_cpu_state(model))
            evaluate_now = step % config.eval_every == 0 or step == config.max_steps
            if not evaluate_now:
                continue
            dev_uar = uar(dev.labels, predict(model, dev, device=device))
            model.train()
            bar.set_postfix(loss=f"{loss:.3f}", dev_uar=f"{dev_uar:.3f}")
            log.debug("step %d: loss %.4f, dev UAR %.4f", step, loss, dev_uar)
            if dev_uar > best_uar:
                best_uar, best_step, best_state = dev_uar, step, _cpu_state(model)
                best_seconds, stale = time.perf_counter() - start, 0
            else:
                stale += 1
                if config.patience is not None and stale >= config.patience:
                    log.debug("no dev improvement in %d evaluations: stopping at step %d", stale, step)
                    break
    total_seconds = time.perf_counter() - start
    if len(snapshots) < len(snapshot_steps):
        log.warning("early stop at step %d: %d of %d snapshots taken", step, len(snapshots), len(snapshot_steps))
    model.load_state_dict(best_state)
    model.cpu().eval()
    log.debug("downstream: best dev UAR %.4f at step %d (%.1f s of %.1f s)",
              best_uar, best_step, best_seconds, total_seconds)
    return DownstreamResult(model=model, best_step=best_step, dev_uar=best_uar, train_seconds=best_seconds,
                            total_seconds=total_seconds, steps=step, snapshots=snapshots)


def _noise_scale(train: FeatureSet, augment_noise: float) -> torch.Tensor | None:
    """Per-dimension std of the augmentation noise: augment_noise x each dimension's std over the training frames."""
    if augment_noise == 0:
        return None
    frames = np.concatenate(list(train.frame_chunks(1 << 18))).astype(np.float64)
    return torch.from_numpy((augment_noise * frames.std(axis=0)).astype(np.float32))


@torch.no_grad()
def _apply(model: Downstream, fs: FeatureSet, batch_size: int, device: str | torch.device, embed: bool) -> np.ndarray:
    """Run the model (moved to `device`, left in eval mode) over every utterance, in utterance order."""
    device = resolve_device(device)
    model.to(device).eval()
    width = model.hidden if embed else model.n_classes
    out = np.zeros((len(fs), width), dtype=np.float32)
    for index, batch in eval_batches(fs, batch_size):
        batch = batch.to(device)
        values = model.embed(batch.x, batch.mask) if embed else model(batch.x, batch.mask)
        out[index] = values.float().cpu().numpy()
    return out


def predict_logits(model: Downstream, fs: FeatureSet, batch_size: int = 64,
                   device: str | torch.device = "auto") -> np.ndarray:
    """Logits (N, n_classes) for every utterance of fs."""
    return _apply(model, fs, batch_size, device, embed=False)


def predict(model: Downstream, fs: FeatureSet, batch_size: int = 64,
            device: str | torch.device = "auto") -> np.ndarray:
    """Predicted class indexes (N,) int64 for every utterance of fs."""
    return predict_logits(model, fs, batch_size, device).argmax(axis=1).astype(np.int64)


def teacher_probabilities(teachers: Iterable[Downstream], fs: FeatureSet,
                          device: str | torch.device = "auto") -> np.ndarray:
    """(N, C): the mean over `teachers` of their softmax on every utterance of fs (soft labels to train on)."""
    probabilities = [torch.softmax(torch.from_numpy(predict_logits(t, fs, device=device)), dim=1).numpy()
                     for t in teachers]
    if not probabilities:
        raise ConfigError("soft labels need at least one teacher")
    return np.mean(probabilities, axis=0)


def embed_set(model: Downstream, fs: FeatureSet, batch_size: int = 64,
              device: str | torch.device = "auto") -> np.ndarray:
    """Pooled projector outputs (N, hidden) for every utterance of fs (the privacy probe's speaker embedding)."""
    return _apply(model, fs, batch_size, device, embed=True)
