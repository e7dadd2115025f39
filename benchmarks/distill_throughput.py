"""Distillation throughput: generator steps/s, real samples/s and peak memory per architecture and feature shape.

Cases: GAN-CNN and GAN-ATT at fbank's D = 80 with the `small` preset (T = 64), and at HuBERT-base's D = 768,
T = 200 with the `paper` preset; then the gradient penalty on every critic step (gp_every=1) against once per
generator step (gp_every=n_critic) at the fbank shape, timed in the same run so the ratio is like for like.

    python benchmarks/distill_throughput.py [--steps N] [--threads N] [--device auto|cpu|cuda]

On a CPU each case runs in a forked child so that its peak RSS is its own; paper-scale steps cost tens of
seconds there, so the D = 768 cases run few steps at a reduced batch (printed with the figures).
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import resource
import time
from dataclasses import dataclass

import numpy as np
import torch

from emodistill.distill import load_config
from emodistill.distill.trainer import Distiller
from emodistill.downstream import resolve_device
from emodistill.features.dataset import FeatureSet
from emodistill.features.schema import FeatureMeta
from emodistill.features.store import build_table

LABELS = ["neu", "hap", "ang", "sad"]


@dataclass
class Case:
    name: str
    preset: str
    dim: int
    overrides: list[str]
    steps: int


def random_features(dim: int, frames: int, n: int = 64) -> FeatureSet:
    """n utterances slightly longer than the GAN window (so every batch is a crop), random frames."""
    rng = np.random.default_rng(0)
    meta = FeatureMeta(corpus="bench", upstream="random", upstream_config={}, layer=None, sample_rate=16000,
                       frame_rate=50.0, dim=dim, labels=LABELS)
    items = [({"utt_id": f"u{i}", "label": LABELS[i % 4]}, rng.normal(size=(frames + 20, dim)).astype(np.float32))
             for i in range(n)]
    return FeatureSet.from_table(build_table(items, meta))


def measure(case: Case, device: str) -> dict:
    """Time `case.steps` generator steps after one warm-up step; report rates and peak memory."""
    config = load_config(case.preset, case.overrides + [f"train.device={device}"])
    run = Distiller(random_features(case.dim, config.model.frames), config, pool=[])
    if run.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(run.device)
    run.train_step()  # warm-up: allocator, lazy initialisation, cuDNN autotuning
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    start = time.perf_counter()
    for _ in range(case.steps):
        run.train_step()
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
        peak_mb = torch.cuda.max_memory_allocated(run.device) / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    seconds = (time.perf_counter() - start) / case.steps
    real_per_step = config.optim.batch_size * (config.optim.n_critic + 1)  # each critic step and the G step draw a batch
    return {"case": case.name, "T": config.model.frames, "D": case.dim, "batch": config.optim.batch_size,
            "n_critic": config.optim.n_critic, "gp_every": config.optim.gp_every, "steps": case.steps,
            "s_per_step": seconds, "steps_per_s": 1 / seconds, "real_per_s": real_per_step / seconds,
            "peak_mb": peak_mb, "params_g": sum(p.numel() for p in run.G.parameters()),
            "params_d": sum(p.numel() for p in run.D.parameters())}


def _child(case: Case, device: str, threads: int, queue) -> None:
    torch.set_num_threads(threads)
    queue.put(measure(case, device))


def measure_isolated(case: Case, device: str, threads: int) -> dict:
    """On a CPU, measure in a forked child so ru_maxrss is this case's peak; on CUDA, in this process."""
    if device != "cpu":
        return measure(case, device)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(case, device, threads, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def cases(device: str, steps: int, large_batch: int, large_steps: int) -> tuple[list[Case], list[Case]]:
    """Shape/architecture cases and the gp_every pair."""
    shapes = []
    for arch in ("gan_cnn", "gan_att"):
        # The small preset is GAN-ATT; GAN-CNN at the same widths (its own paper width would be 16x the cost).
        shapes.append(Case(f"{arch} fbank", "small", 80, [f"model.arch={arch}"], steps))
        large = [f"model.arch={arch}", "model.g_channels=256" if arch == "gan_cnn" else "model.g_channels=128"]
        if device == "cpu":
            large.append(f"optim.batch_size={large_batch}")
        shapes.append(Case(f"{arch} hubert", "paper", 768, large, large_steps))
    gp = [Case(f"gan_att fbank gp_every={k}", "small", 80, [f"optim.gp_every={k}"], steps) for k in (1, 5)]
    return shapes, gp


def table(rows: list[dict]) -> str:
    """Markdown table of the measurements."""
    lines = ["| case | T x D | batch | n_critic | gp_every | params G / D | steps timed | s / G step | G steps/s "
             "| real samples/s | peak MiB |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['T']} x {r['D']} | {r['batch']} | {r['n_critic']} | {r['gp_every']} "
                     f"| {r['params_g'] / 1e6:.2f}M / {r['params_d'] / 1e6:.2f}M | {r['steps']} "
                     f"| {r['s_per_step']:.2f} | {r['steps_per_s']:.3f} | {r['real_per_s']:.1f} | {r['peak_mb']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=None, help="timed generator steps (default 3 on CPU, 20 on CUDA)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument("--large-batch", type=int, default=4, help="batch of the D=768 cases on CPU")
    parser.add_argument("--large-steps", type=int, default=1, help="timed steps of the D=768 cases on CPU")
    args = parser.parse_args()
    device = str(resolve_device(args.device).type)
    steps = args.steps or (3 if device == "cpu" else 20)
    large_steps = args.large_steps if device == "cpu" else steps
    torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name() if device == "cuda" else f"{platform.processor() or 'cpu'}, {args.threads} threads"
    print(f"device: {device} ({where}); torch {torch.__version__}")
    if device == "cpu":
        print(f"D=768 cases on CPU: batch {args.large_batch} (paper: 32), {large_steps} timed step(s); "
              "peak memory is the child process's max RSS (includes ~the interpreter and torch)")
    shape_cases, gp_cases = cases(device, steps, args.large_batch, large_steps)
    rows = [measure_isolated(c, device, args.threads) for c in shape_cases]
    gp_rows = [measure_isolated(c, device, args.threads) for c in gp_cases]
    print(table(rows + gp_rows))
    every, lazy = gp_rows
    print(f"gp_every=5 vs gp_every=1 at {every['T']} x {every['D']}: "
          f"{lazy['steps_per_s'] / every['steps_per_s']:.2f}x generator steps/s")


if __name__ == "__main__":
    main()
