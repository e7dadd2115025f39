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
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from emodistill.distill.checkpoint import load_checkpoint, restore_rng, rng_state, save_checkpoint
from emodistill.distill.config import DistillConfig
from emodistill.distill.data import Normalization, RealBatches
from emodistill.distill.pool import frozen, train_pool
from emodistill.downstream import Downstream
from emodistill.errors import ConfigError, FeatureTableError, TrainingDiverged
from emodistill.features.dataset import FeatureSet
from emodistill.generator import TrainedGenerator, artifact_config, save_generator
from emodistill.losses import (class_cross_entropy, critic_loss, diversity_loss, feature_matching,
                               generator_adversarial_loss, gradient_penalty, sml_loss)
from emodistill.models import build_discriminator, build_generator, make_latent
from emodistill.runtime import resolve_device

log = logging.getLogger(__name__)


@dataclass
class Hooks:
    """Callbacks into a running distillation; any may be None."""

    # Every train.log_every steps, the latest value of each term: critic loss_d, wasserstein, gp, cls_real,
    # cls_fake; generator loss_g, adversarial, cls_fake_g, fm, div, sml (a term whose λ is 0 is absent).
    on_log: Callable[[int, dict[str, float]], None] | None = None
    # Every train.eval_every steps, with the generator in eval mode; the metrics it returns go into the artifact.
    on_eval: Callable[[int, TrainedGenerator], dict | None] | None = None
    on_checkpoint: Callable[[int, Path], None] | None = None  # after each checkpoint is written


def _check_finite(terms: dict[str, torch.Tensor], step: int) -> None:
    """Raise TrainingDiverged naming the first NaN/inf loss term (one device sync for all of them)."""
    values = torch.stack([t.detach().float() for t in terms.values()])
    if not torch.isfinite(values).all():
        name, value = next((n, v) for n, v in zip(terms, values.tolist()) if not np.isfinite(v))
        raise TrainingDiverged(f"loss '{name}' is {value} at generator step {step}; "
                               "lower optim.lr_g / optim.lr_d or check the features for NaN/inf")


class Distiller:
    """The networks, optimisers, data and random streams of one run, and its two update rules."""

    def __init__(self, train: FeatureSet, config: DistillConfig, pool: list[Downstream]):
        self.config, self.train_meta = config, train.meta
        if config.loss.lambda_sml > 0 and not pool:
            raise ConfigError("loss.lambda_sml > 0 needs a non-empty downstream pool")
        self.device = resolve_device(config.train.device)
        self.bf16 = self.device.type == "cuda" and config.train.precision in ("auto", "bf16")
        if config.train.precision == "bf16" and not self.bf16:
            log.warning("train.precision=bf16 applies on CUDA only; training in fp32 on %s", self.device)
        self.label_names = train.label_names
        self.class_prior = train.class_counts() / len(train)
        self.model_config = config.model_for(train.dim, len(train.label_names))
        self.normalization = Normalization.of(train)
        seed = config.train.seed
        torch.manual_seed(seed)
        self.G = build_generator(self.model_config).to(self.device)
        self.D = build_discriminator(self.model_config).to(self.device)
        betas = config.optim.betas
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=config.optim.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=config.optim.lr_d, betas=betas)
        self.rng = np.random.default_rng(seed)  # real batches and pool draws
        self.noise = torch.Generator().manual_seed(seed)  # latent noise, drawn on the CPU for every device
        self.batches = RealBatches(train, self.model_config.frames, config.optim.batch_size, self.normalization,
                                   self.rng, self.device)
        self.pool = [frozen(m).to(self.device) for m in pool]
        self.step = 0
        self.latest: dict[str, torch.Tensor] = {}  # last value of every loss term (gp may skip critic steps)

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA when the config asks for it; a no-op otherwise."""
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
        return {name: value.detach() for name, value in terms.items()}

    def train_step(self) -> dict[str, torch.Tensor]:
        """n_critic critic updates, then one generator update; returns the latest value of every term."""
        self.step += 1
        n_critic = self.config.optim.n_critic
        for i in range(n_critic):
            self.latest.update(self.critic_step((self.step - 1) * n_critic + i))
        self.latest.update(self.generator_step())
        return self.latest

    def state(self, seconds: float) -> dict:
        """Everything needed to continue bit-identically (weights_only-loadable)."""
        return {"step": self.step, "seconds": seconds, "config": json.dumps(self.config.model_dump(mode="json")),
                "generator": self.G.state_dict(), "discriminator": self.D.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "rng": rng_state(self.rng, self.noise)}

    def restore(self, state: dict, source: Path) -> None:
        """Continue from a checkpoint written by `state` for the same model, losses, optimiser, pool and seed."""
        saved = DistillConfig.model_validate(json.loads(state["config"])).flatten()
        current = self.config.flatten()
        # The train section may change between runs (more steps, other logging), except the seed.
        changed = sorted(k for k in current if (not k.startswith("train.") or k == "train.seed")
                         and saved.get(k) != current[k])
        if changed:
            raise ConfigError(f"{source}: cannot resume, the config differs in {changed}")
        self.G.load_state_dict(state["generator"])
        self.D.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        restore_rng(state["rng"], self.rng, self.noise)
        self.step = state["step"]

    def artifact_fields(self, metrics: dict) -> dict:
        """What the generator artifact records besides the weights (keyword arguments of save_generator)."""
        return {"model_config": self.model_config.model_dump(), "label_names": self.label_names,
                "class_prior": self.class_prior, "feature_meta": asdict(self.train_meta),
                "normalization": self.normalization.as_tuple(),
                "training_config": self.config.model_dump(mode="json"), "metrics": metrics}

    def evaluate(self, hook: Callable[[int, TrainedGenerator], dict | None]) -> dict:
        """Hand the current generator (eval mode) to `hook`, shielding the run's random streams from it."""
        self.G.eval()
        generator = TrainedGenerator(module=self.G, config=artifact_config(self.G, **self.artifact_fields({})),
                                     device=self.device)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # no no_grad: hooks may train models (the sweep's UAR)
            result = hook(self.step, generator) or {}
        self.G.train()
        return result


def _check_splits(train: FeatureSet, dev: FeatureSet) -> None:
    if train.label_names != dev.label_names or train.dim != dev.dim:
        raise FeatureTableError(f"train ({train.dim} dims, labels {train.label_names}) and dev ({dev.dim} dims, "
                                f"labels {dev.label_names}) do not come from the same feature extraction")


def distill(train: FeatureSet, dev: FeatureSet, config: DistillConfig, out_dir: str | Path, *,
            pool: list[Downstream] | None = None, pool_cache_dir: str | Path | None = None,
            pool_fingerprint: str | None = None, resume: bool = False, hooks: Hooks | None = None,
            progress: bool = True) -> Path:
    """Train a generator on `train`, write its artifact to out_dir/generator and return that path.

    `pool_fingerprint` keys the pool cache (a feature directory's recorded fingerprint); without it the
    frames of `train` and `dev` are hashed.
    """
    _check_splits(train, dev)
    out_dir, hooks = Path(out_dir), hooks or Hooks()
    checkpoints = out_dir / "checkpoints"
    train_cfg = config.train
    if config.loss.lambda_sml > 0 and pool is None:
        pool = train_pool(train, dev, config.pool, pool_cache_dir, fingerprint=pool_fingerprint, progress=progress)
    run = Distiller(train, config, pool if config.loss.lambda_sml > 0 else [])
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

    metrics: dict[str, float] = {}
    started = time.perf_counter() - seconds
    bar = tqdm(total=train_cfg.steps, initial=run.step, desc="distill", disable=not progress)
    while run.step < train_cfg.steps:
        terms = run.train_step()
        bar.update()
        step = run.step
        if step % train_cfg.log_every == 0 or step == train_cfg.steps:
            losses = {name: value.item() for name, value in terms.items()}
            metrics.update(losses)
            bar.set_postfix({k: f"{losses[k]:.3g}" for k in ("loss_d", "loss_g", "wasserstein") if k in losses})
            if hooks.on_log:
                hooks.on_log(step, losses)
        if train_cfg.eval_every and step % train_cfg.eval_every == 0 and hooks.on_eval:
            metrics.update(run.evaluate(hooks.on_eval))
        if train_cfg.checkpoint_every and (step % train_cfg.checkpoint_every == 0 or step == train_cfg.steps):
            path = save_checkpoint(checkpoints, run.state(time.perf_counter() - started))
            if hooks.on_checkpoint:
                hooks.on_checkpoint(step, path)
    bar.close()
    metrics.update(steps=run.step, train_seconds=round(time.perf_counter() - started, 3))
    return save_generator(run.G, out_dir / "generator", **run.artifact_fields(metrics))
