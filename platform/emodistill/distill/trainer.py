"""The distillation loop: a conditional WGAN-GP (paper Eqs. 1-5) plus L_DIV and L_SML (Eqs. 6-8).

Per generator step, `n_critic` critic steps minimise

    L_D = E[d(g(z))] - E[d(x)] + λ1·GP + λ2·CE(d_cls(x), y) + λ3·CE(d_cls(g(z)), y)

and then one generator step minimises

    L_G = -E[d(g(z))] + λ3·CE(d_cls(g(z)), y) + λ4·FM + λ5·L_DIV + λ6·L_SML.

Fakes are generated for the labels of the real batch they are compared with, so CE, FM and the SML pairs
(x_j, g(z_j)) share classes. The gradient penalty may be computed on every `gp_every`-th critic step only;
it is then multiplied by `gp_every` (lazy regularisation, as in StyleGAN2) so its average pull is unchanged.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from emodistill.distill.checkpoint import load_checkpoint, restore_rng, rng_state, save_checkpoint
from emodistill.distill.config import DistillConfig, OptimConfig
from emodistill.distill.data import Normalization, RealBatches
from emodistill.distill.gaussian import fit_gaussian, mean_path_start
from emodistill.distill.pool import feature_fingerprint, frozen, train_pool
from emodistill.downstream import Downstream
from emodistill.errors import ConfigError, FeatureTableError, TrainingDiverged, one_line
from emodistill.features.dataset import FeatureSet
from emodistill.generator import TrainedGenerator, artifact_config, save_generator, save_trained
from emodistill.losses import (class_cross_entropy, critic_loss, diversity_loss, feature_matching,
                               generator_adversarial_loss, gradient_penalty, sml_loss)
from emodistill.models import ModelConfig, build_discriminator, build_generator, make_latent, training_bytes
from emodistill.memory import check_memory
from emodistill.runtime import resolve_device

log = logging.getLogger(__name__)

T = TypeVar("T")
# (step, generator in eval mode) -> metrics, e.g. {"dev_uar_ppc100": 0.61}
Evaluate = Callable[[int, TrainedGenerator], dict[str, float]]


def _check_finite(terms: dict[str, torch.Tensor], step: int) -> None:
    """Raise TrainingDiverged naming the first NaN/inf loss term (one device sync for all of them)."""
    values = torch.stack([t.detach().float() for t in terms.values()])
    if not torch.isfinite(values).all():
        name, value = next((n, v) for n, v in zip(terms, values.tolist()) if not np.isfinite(v))
        raise TrainingDiverged(f"loss '{name}' is {value} at generator step {step}; "
                               "lower optim.lr_g / optim.lr_d or check the features for NaN/inf")


STANDING_BATCHES = 32  # batches that measure the averaged generator's BatchNorm statistics
CHECKPOINT_KEYS = ("step", "seconds", "config", "features", "generator", "discriminator", "generator_ema", "opt_g",
                   "opt_d", "rng", "best")


@dataclass
class Selection:
    """The generator chosen on dev so far: when, by which metric, its metrics, and its weights (on the CPU)."""

    step: int
    metric: str
    value: float
    metrics: dict[str, float]
    weights: dict[str, torch.Tensor]


class Distiller:
    """The networks, optimisers, data and random streams of one run, and its two update rules."""

    def __init__(self, train: FeatureSet, config: DistillConfig, pool: list[Downstream], features: str | None = None,
                 selection: dict | None = None):
        self.config, self.train, self.features = config, train, features  # features: the tables' fingerprint
        # How dev scores choose the saved generator (metric and scoring settings): a resume must score alike.
        self.selection = selection
        check_trainable(train, config)
        if config.loss.lambda_sml > 0 and not pool:
            raise ConfigError("loss.lambda_sml > 0 needs a non-empty downstream pool")
        self.device = resolve_device(config.train.device, "train.device")
        # An explicit bf16 holds on the CPU too (slower there than fp32, but the same arithmetic as on a GPU).
        precision = config.train.precision
        self.bf16 = precision == "bf16" or (precision == "auto" and self.device.type == "cuda")
        self.model_config = config.model_for(train.dim, len(train.label_names))
        self.normalization = Normalization.of(train)
        seed = config.train.seed
        torch.manual_seed(seed)
        self.G = build_generator(self.model_config)
        if self.model_config.mean_path_init == "gaussian":
            means, factor = mean_path_start(train, self.normalization, self.model_config.noise_dim)
            self.G.mean_path.start_at(torch.from_numpy(means), torch.from_numpy(factor))
        self.G = self.G.to(self.device)
        self.D = build_discriminator(self.model_config).to(self.device)
        betas = config.optim.betas
        self.opt_g = torch.optim.Adam(generator_groups(self.G, config.optim), lr=config.optim.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=config.optim.lr_d, betas=betas)
        self.rng = np.random.default_rng(seed)  # real batches and pool draws
        self.noise = torch.Generator().manual_seed(seed)  # latent noise, drawn on the CPU for every device
        self.batches = RealBatches(train, self.model_config.frames, config.optim.batch_size, self.normalization,
                                   self.rng, self.device)
        self.pool = [frozen(m).to(self.device) for m in pool]
        # With train.ema > 0, an exponential moving average of G's weights is what is sampled and saved.
        self.G_ema = frozen(copy.deepcopy(self.G)) if config.train.ema > 0 else None
        self.step = 0
        self.latest: dict[str, torch.Tensor] = {}  # last value of every loss term (gp may skip critic steps)
        self.best: Selection | None = None  # the checkpoint chosen on dev so far (see `select`)

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast when the config asks for it (`auto`: on CUDA); a no-op otherwise."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def latent(self, labels: torch.Tensor) -> torch.Tensor:
        """z = [one_hot(y) ⊕ e], e ~ N(0, 1)."""
        noise = torch.randn(len(labels), self.model_config.noise_dim, generator=self.noise)
        return make_latent(labels, noise.to(self.device), self.model_config.n_classes)

    def critic_step(self, index: int) -> dict[str, torch.Tensor]:
        """One update of the critic on L_D; `index` counts critic steps over the run (for gp_every)."""
        loss_cfg, every = self.config.loss, self.config.optim.gp_every
        x, y = self.batches.next()
        with self.autocast():
            with torch.no_grad():
                fake = self.G(self.latent(y))
            d_real, logits_real, _ = self.D(x)
            d_fake, logits_fake, _ = self.D(fake)
            terms = {"wasserstein": d_real.mean() - d_fake.mean(),
                     "cls_real": class_cross_entropy(logits_real, y),
                     "cls_fake": class_cross_entropy(logits_fake, y)}
            loss = (critic_loss(d_real, d_fake) + loss_cfg.lambda_cls_real * terms["cls_real"]
                    + loss_cfg.lambda_cls_fake * terms["cls_fake"])
            if loss_cfg.lambda_gp > 0 and index % every == 0:
                terms["gp"] = gradient_penalty(lambda v: self.D(v)[0], x, fake)
                loss = loss + loss_cfg.lambda_gp * every * terms["gp"]
        terms["loss_d"] = loss
        _check_finite(terms, self.step)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return {name: value.detach() for name, value in terms.items()}

    def generator_step(self) -> dict[str, torch.Tensor]:
        """One update of the generator on L_G + λ5·L_DIV + λ6·L_SML (terms with λ = 0 are not computed)."""
        loss_cfg = self.config.loss
        x, y = self.batches.next()
        self.D.requires_grad_(False)  # the critic is a fixed function during this step
        with self.autocast():
            z = self.latent(y)
            fake = self.G(z)
            d_fake, logits_fake, feats_fake = self.D(fake)
            terms = {"adversarial": generator_adversarial_loss(d_fake),
                     "cls_fake_g": class_cross_entropy(logits_fake, y)}
            loss = terms["adversarial"] + loss_cfg.lambda_cls_fake * terms["cls_fake_g"]
            if loss_cfg.lambda_fm > 0:
                with torch.no_grad():
                    _, _, feats_real = self.D(x)
                terms["fm"] = feature_matching(feats_real, feats_fake)
                loss = loss + loss_cfg.lambda_fm * terms["fm"]
            if loss_cfg.lambda_div > 0:
                z2 = self.latent(y)  # a second noise draw for the same labels
                terms["div"] = diversity_loss(fake, self.G(z2), z, z2, loss_cfg.tau)
                loss = loss + loss_cfg.lambda_div * terms["div"]
            if loss_cfg.lambda_sml > 0:
                # The pool was trained on real features: show it both batches de-normalised.
                f_theta = self.pool[int(self.rng.integers(len(self.pool)))]
                with torch.no_grad():
                    logits_real = f_theta(self.batches.denormalize(x))
                terms["sml"] = sml_loss(logits_real, f_theta(self.batches.denormalize(fake)))
                loss = loss + loss_cfg.lambda_sml * terms["sml"]
        terms["loss_g"] = loss
        _check_finite(terms, self.step)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        self._update_ema()
        return {name: value.detach() for name, value in terms.items()}

    @torch.no_grad()
    def _update_ema(self) -> None:
        """G_ema <- decay·G_ema + (1 - decay)·G, weights only (`sampler` measures its BatchNorm statistics)."""
        if self.G_ema is None:
            return
        for averaged, current in zip(self.G_ema.parameters(), self.G.parameters()):
            averaged.lerp_(current, 1.0 - self.config.train.ema)

    def _set_learning_rates(self) -> None:
        """optim.lr_decay "linear": both learning rates fall from their set value to 0 at train.steps."""
        if self.config.optim.lr_decay == "none":
            return
        factor = max(0.0, 1.0 - self.step / self.config.train.steps)
        optim = self.config.optim
        for optimizer, rates in ((self.opt_g, [optim.lr_g, optim.lr_mean_path]), (self.opt_d, [optim.lr_d])):
            for group, lr in zip(optimizer.param_groups, rates):
                group["lr"] = lr * factor

    def train_step(self) -> dict[str, torch.Tensor]:
        """n_critic critic updates, then one generator update; returns the latest value of every term."""
        self._set_learning_rates()  # a function of the step alone: nothing to checkpoint
        self.step += 1
        n_critic, warmup = self.config.optim.n_critic, self.config.optim.critic_warmup
        # Critic step k counts over the run (for gp_every): the warm-up's steps come before the first generator step.
        first = 0 if self.step == 1 else warmup + (self.step - 1) * n_critic
        for i in range(first, warmup + self.step * n_critic):
            self.latest.update(self.critic_step(i))
        self.latest.update(self.generator_step())
        return self.latest

    def train_steps(self, n: int) -> dict[int, dict[str, float]]:
        """Run `n` generator steps; the losses of every step that falls on train.log_every (and of the last)."""
        logged = {}
        for i in range(n):
            terms = self.train_step()
            if self.step % self.config.train.log_every == 0 or i == n - 1:
                logged[self.step] = {name: value.item() for name, value in terms.items()}
        return logged

    def sampler(self) -> nn.Module:
        """A copy of the network that is sampled and saved, in eval mode: G, or with train.ema its average.

        The average's BatchNorm layers get "standing statistics" (as in BigGAN): their running mean and
        variance are measured anew on the averaged weights, over STANDING_BATCHES batches of latents drawn at
        the real class prior (seeded by the step, not drawn from the run's streams); G's own statistics
        belong to G's weights, not to their average.
        """
        if self.G_ema is None:
            return copy.deepcopy(self.G).eval()
        module = copy.deepcopy(self.G_ema)
        norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a plain average over the batches below
        module.train()
        generator = torch.Generator().manual_seed(self.config.train.seed * 1_000_003 + self.step)
        prior = torch.as_tensor(self.train.class_counts() / len(self.train))
        batch = self.config.optim.batch_size
        with torch.no_grad():
            for _ in range(STANDING_BATCHES if norms else 0):
                labels = torch.multinomial(prior, batch, replacement=True, generator=generator)
                noise = torch.randn(batch, self.model_config.noise_dim, generator=generator)
                module(make_latent(labels, noise, self.model_config.n_classes).to(self.device))
        for norm in norms:
            norm.momentum = 0.1
        return module.eval()

    def generator(self, metrics: dict | None = None) -> TrainedGenerator:
        """A copy of the current generator in eval mode, ready to sample (training goes on unaffected)."""
        module = self.sampler()
        return TrainedGenerator(module=module, config=artifact_config(module, **self.artifact_fields(metrics or {})),
                                device=self.device)

    def evaluate(self, fn: Callable[[TrainedGenerator], T]) -> T:
        """`fn(generator)` on a copy of the current generator, with the run's random streams shielded from it
        (evaluating never changes what training draws next)."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            return fn(self.generator())

    def select(self, metrics: dict[str, float], metric: str) -> bool:
        """Keep the current generator if `metrics[metric]` (a dev score, higher is better) beats the best so far."""
        if metric not in metrics:
            raise ConfigError(f"selection metric {metric!r} is not among the evaluated metrics {sorted(metrics)}")
        value = float(metrics[metric])
        if self.best is not None and not value > self.best.value:
            return False
        weights = {name: t.detach().to("cpu", copy=True) for name, t in self.sampler().state_dict().items()}
        self.best = Selection(step=self.step, metric=metric, value=value, metrics=dict(metrics), weights=weights)
        return True

    def selected(self) -> tuple[nn.Module, dict]:
        """The generator to save (the dev-selected one if any, else the current one) and its metrics."""
        module = self.sampler()
        if self.best is None:
            return module, {}
        module.load_state_dict(self.best.weights)
        return module, {**self.best.metrics, "selected_step": self.best.step, "selected_by": self.best.metric}

    def state(self, seconds: float) -> dict:
        """Everything needed to continue bit-identically (weights_only-loadable)."""
        best = None if self.best is None else {**asdict(self.best), "metrics": json.dumps(self.best.metrics)}
        return {"step": self.step, "seconds": seconds, "config": json.dumps(self.config.model_dump(mode="json")),
                "features": self.features, "generator": self.G.state_dict(), "discriminator": self.D.state_dict(),
                "generator_ema": None if self.G_ema is None else self.G_ema.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "rng": rng_state(self.rng, self.noise), "best": best, "selection": json.dumps(self.selection)}

    def restore(self, state: dict, source: Path) -> None:
        """Continue from a checkpoint written by `state` for the same features, model, losses, optimiser, pool, seed."""
        missing = [key for key in CHECKPOINT_KEYS if key not in state]
        if missing:
            raise ConfigError(f"{source}: not a checkpoint of this emodistill version (lacks {missing}); "
                              "start a new run in another folder")
        if state["features"] != self.features:
            raise ConfigError(f"{source}: the checkpoint was trained on features {state['features']}, not on these "
                              f"({self.features}); resume with the feature folder (and fold) it was trained on")
        try:
            saved = DistillConfig.model_validate(json.loads(state["config"])).flatten()
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: its config is damaged ({one_line(exc)}); start a new run in another "
                              "folder") from None
        current = self.config.flatten()
        # The train section may change between runs (more steps, other logging), except the seed.
        changed = sorted(k for k in current if (not k.startswith("train.") or k == "train.seed")
                         and saved.get(k) != current[k])
        if changed:
            raise ConfigError(f"{source}: cannot resume, the config differs in {changed}")
        selection = json.loads(state.get("selection") or "null")  # absent: a checkpoint from before it was recorded
        if selection != self.selection:
            raise ConfigError(f"{source}: cannot resume, the checkpoint was chosen on dev with {selection}, not "
                              f"{self.selection} (its best score is not comparable); resume with the same selection "
                              "settings, or start a new run")
        try:
            self._load_state(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"{source}: its weights, optimiser or random state do not fit this run "
                              f"({one_line(exc)[:300]}); start a new run in another folder") from None
        if self.step > self.config.train.steps:  # it would train nothing and record the fewer steps
            raise ConfigError(f"{source}: cannot resume, the checkpoint is at step {self.step}, past train.steps "
                              f"{self.config.train.steps}: resume with train.steps >= {self.step}, or start a new run")

    def _load_state(self, state: dict) -> None:
        self.G.load_state_dict(state["generator"])
        self.D.load_state_dict(state["discriminator"])
        if self.G_ema is not None:
            self.G_ema.load_state_dict(state["generator_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        restore_rng(state["rng"], self.rng, self.noise)
        self.step = int(state["step"])
        best = state["best"]
        self.best = None if best is None else Selection(**{**best, "metrics": json.loads(best["metrics"])})

    def artifact_fields(self, metrics: dict) -> dict:
        """What the generator artifact records besides the weights (keyword arguments of save_generator)."""
        return artifact_fields(self.train, self.config, self.model_config, self.normalization, metrics, self.features)


def generator_groups(generator: nn.Module, optim: OptimConfig) -> list[dict]:
    """The generator's Adam parameter groups: every weight but the mean path's at lr_g, then the mean path's at
    optim.lr_mean_path when that is set."""
    path = getattr(generator, "mean_path", None)
    own = set() if path is None or optim.lr_mean_path is None else {id(p) for p in path.parameters()}
    rest = [p for p in generator.parameters() if id(p) not in own]
    groups = [{"params": rest, "lr": optim.lr_g}]
    if own:
        groups.append({"params": list(path.parameters()), "lr": optim.lr_mean_path})
    return groups


def artifact_fields(train: FeatureSet, config: DistillConfig, model_config: ModelConfig,
                    normalization: Normalization, metrics: dict, features: str | None = None) -> dict:
    """What a generator artifact records besides the weights (keyword arguments of save_generator)."""
    return {"model_config": model_config.model_dump(), "label_names": train.label_names,
            "class_prior": train.class_counts() / len(train), "feature_meta": asdict(train.meta),
            "normalization": normalization.as_tuple(), "training_config": config.model_dump(mode="json"),
            "metrics": metrics, "features": features}


def check_classes(train: FeatureSet) -> None:
    """Refuse a training split without an utterance of some class: the generator could never learn to sample it."""
    empty = [name for name, n in zip(train.label_names, train.class_counts()) if n == 0]
    if empty:
        raise FeatureTableError(f"the training split has no utterance of class(es) {empty}; a "
                                "generator trained on it could never sample them (drop the class from the label set, "
                                "or choose a fold whose training sessions hold it)")


def fit_gaussian_generator(train: FeatureSet, config: DistillConfig, features: str | None = None) -> TrainedGenerator:
    """The Gaussian baseline (model.arch 'gaussian') fitted to `train`, in memory; its metrics hold the fit time,
    its artifact fields `features` (the fingerprint of the fold it was fitted on, as a trained generator's)."""
    started = time.perf_counter()
    check_classes(train)
    model_config = config.model_for(train.dim, len(train.label_names))
    normalization = Normalization.of(train)
    module = fit_gaussian(train, model_config, normalization)
    metrics = {"steps": 0, "train_seconds": round(time.perf_counter() - started, 3)}
    fields = artifact_fields(train, config, model_config, normalization, metrics, features)
    return TrainedGenerator(module=module, config=artifact_config(module, **fields), device=torch.device("cpu"))


def _distill_gaussian(train: FeatureSet, config: DistillConfig, out_dir: Path, evaluate: Evaluate | None,
                      features: str, replace: bool) -> Path:
    """Fit the Gaussian baseline (no steps, no checkpoints), evaluate it once at step 0, save it (with `replace`,
    over a run whose checkpoints go)."""
    generator = fit_gaussian_generator(train, config, features)
    if evaluate is not None:
        generator.config["metrics"].update(evaluate(0, generator))
    if replace:
        discard_checkpoints(out_dir)
    return save_trained(generator, out_dir / "generator")


def check_trainable(train: FeatureSet, config: DistillConfig) -> None:
    """Refuse a training split missing a class, and networks and batches too big for the device."""
    check_classes(train)
    model = config.model_for(train.dim, len(train.label_names))
    check_memory(training_bytes(model, config.optim.batch_size),
                 f"config: {model.arch} of model.frames {model.frames}, model.dim {model.dim}, model.g_channels "
                 f"{model.g_channels}, model.noise_dim {model.noise_dim}, optim.batch_size {config.optim.batch_size}",
                 "make the model or the batch smaller", resolve_device(config.train.device, "train.device"))


def _check_splits(train: FeatureSet, dev: FeatureSet) -> None:
    if train.label_names != dev.label_names or train.dim != dev.dim:
        raise FeatureTableError(f"train ({train.dim} dims, labels {train.label_names}) and dev ({dev.dim} dims, "
                                f"labels {dev.label_names}) do not come from the same feature extraction")


def _next_stop(step: int, total: int, *every: int) -> int:
    """The first step after `step` that is a multiple of one of `every` (zeros ignored), or `total`."""
    stops = [(step // e + 1) * e for e in every if e] + [total]
    return min(stops)


def check_out_dir(out_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to start a run over one already in `out_dir` (a finished generator, or checkpoints) unless resuming
    it or told to overwrite it."""
    found = [name for name in ("generator", "checkpoints") if (out_dir / name).exists()]
    if found and not resume and not overwrite:
        raise ConfigError(f"{out_dir}: already holds a run ({' and '.join(found)}); resume it with --resume, replace "
                          "it with --overwrite (API: overwrite=True), or choose another --out")


def discard_checkpoints(out_dir: Path) -> None:
    """Remove the checkpoints of the run an overwrite replaces, once the new one has passed its checks: none is
    mixed with the new run's, and a refused run loses nothing."""
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)


def distill(train: FeatureSet, dev: FeatureSet, config: DistillConfig, out_dir: str | Path, *,
            pool: list[Downstream] | None = None, pool_cache_dir: str | Path | None = None,
            features_fingerprint: str | None = None, resume: bool = False, overwrite: bool = False,
            evaluate: Evaluate | None = None, select: str | None = None, selection: dict | None = None,
            on_log: Callable[[int, dict[str, float]], None] | None = None, progress: bool = True) -> Path:
    """Train a generator on `train`, write its artifact to out_dir/generator and return that path.

    Every train.eval_every steps `evaluate(step, generator)` returns metrics; with `select` (the name of one of
    them, a dev score), the saved generator is the evaluated one that scored best on it, not the last one;
    `selection` names how `evaluate` scores (budget, draws, ...), recorded with `select` in checkpoints so that a
    resume scoring otherwise is refused. `on_log(step, losses)` sees the losses every train.log_every steps.
    `features_fingerprint` (a feature directory's recorded fingerprint) keys the pool cache and is recorded in
    checkpoints and the artifact, so that a resume on other features is refused; without it the frames of `train`
    and `dev` are hashed. A folder holding a run is refused unless `resume` or `overwrite`.
    """
    _check_splits(train, dev)
    out_dir = Path(out_dir)
    check_out_dir(out_dir, resume=resume, overwrite=overwrite)
    fingerprint = features_fingerprint or feature_fingerprint(train, dev)
    replace = overwrite and not resume
    if config.model.arch == "gaussian":
        return _distill_gaussian(train, config, out_dir, evaluate, fingerprint, replace)
    check_trainable(train, config)  # before the pool is trained (Distiller checks again: sweep trials build it)
    checkpoints = out_dir / "checkpoints"
    train_cfg = config.train
    if config.loss.lambda_sml > 0 and pool is None:
        pool = train_pool(train, dev, config.pool, pool_cache_dir, fingerprint=fingerprint, progress=progress)
    run = Distiller(train, config, pool if config.loss.lambda_sml > 0 else [], features=fingerprint,
                    selection=None if select is None else {"metric": select, **(selection or {})})
    if replace:
        discard_checkpoints(out_dir)
    seconds = 0.0
    state = load_checkpoint(checkpoints) if resume else None
    if state is not None:
        run.restore(state, checkpoints)
        seconds = state["seconds"]
        log.info("resuming from %s at step %d", checkpoints, run.step)
    elif resume:
        log.info("no checkpoint in %s: starting from step 0", checkpoints)
    log.info("distilling %d utterances (dim %d, %s) into %s, %d steps on %s%s", len(train), train.dim,
             "/".join(train.label_names), config.model.arch, train_cfg.steps, run.device, " (bf16)" if run.bf16 else "")

    losses: dict[str, float] = {}
    evaluated: dict[str, float] = {}
    eval_every = train_cfg.eval_every if evaluate is not None else 0
    started = time.perf_counter() - seconds
    with tqdm(total=train_cfg.steps, initial=run.step, desc="distill", disable=not progress) as bar:
        while run.step < train_cfg.steps:
            stop = _next_stop(run.step, train_cfg.steps, train_cfg.log_every, eval_every, train_cfg.checkpoint_every)
            n = stop - run.step
            for step, losses in run.train_steps(n).items():
                if on_log:
                    on_log(step, losses)
            bar.update(n)
            bar.set_postfix({k: f"{losses[k]:.3g}" for k in ("loss_d", "loss_g", "wasserstein") if k in losses})
            if eval_every and stop % eval_every == 0:
                evaluated = dict(run.evaluate(lambda generator: evaluate(stop, generator)))
                if select:
                    run.select(evaluated, select)
            if train_cfg.checkpoint_every and (stop % train_cfg.checkpoint_every == 0 or stop == train_cfg.steps):
                save_checkpoint(checkpoints, run.state(time.perf_counter() - started))
    module, chosen = run.selected()
    metrics = {**losses, **(chosen or evaluated), "steps": run.step,
               "train_seconds": round(time.perf_counter() - started, 3)}
    return save_generator(module, out_dir / "generator", **run.artifact_fields(metrics))
