"""Distillation throughput: generator steps/s, real samples/s and peak memory per architecture and feature shape.

Cases: GAN-CNN and GAN-ATT at fbank's D = 80 with the `small` preset (T = 64), and at HuBERT-base's D = 768,
T = 200 with the `paper` preset; then the gradient penalty on every critic step (gp_every=1) against once per
generator step (gp_every=5 = n_critic) at the fbank shape, their steps interleaved in one process so that the
ratio is like for like even on a loaded machine.

    python benchmarks/distill_throughput.py [--steps N] [--large-steps N] [--threads N] [--device auto|cpu|cuda]

On a CPU each case runs in a forked child so that its peak RSS is its own; a paper-scale step takes minutes
there, so the D = 768 cases run one step at batch 2 with one critic step (printed with the figures).
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
from emodistill.downstream import MeanPoolLinear
from emodistill.features.dataset import FeatureSet
from emodistill.features.schema import FeatureMeta
from emodistill.features.store import build_table
from emodistill.runtime import resolve_device

LABELS = ["neu", "hap", "ang", "sad"]
CPU_LARGE = ["optim.batch_size=2", "optim.n_critic=1"]  # the D=768 cases on a CPU


@dataclass
class Case:
    name: str
    preset: str
    dim: int
    overrides: list[str]
    steps: int
    warmup: int = 1


def random_features(dim: int, frames: int, n: int = 64) -> FeatureSet:
    """n utterances slightly longer than the GAN window (so every batch is a crop), random frames."""
    rng = np.random.default_rng(0)
    meta = FeatureMeta(corpus="bench", upstream="random", upstream_config={}, layer=None, sample_rate=16000,
                       frame_rate=50.0, dim=dim, labels=LABELS)
    items = [({"utt_id": f"u{i}", "label": LABELS[i % 4]}, rng.normal(size=(frames + 20, dim)).astype(np.float32))
             for i in range(n)]
    return FeatureSet.from_table(build_table(items, meta))


def measure(case: Case, device: str) -> dict:
    """Time `case.steps` generator steps after `case.warmup` untimed ones; report rates and peak memory."""
    config = load_config(case.preset, case.overrides + [f"train.device={device}"])
    # An untrained downstream costs what a trained one does: it stands in for the L_SML pool.
    pool = [MeanPoolLinear(case.dim, len(LABELS))] if config.loss.lambda_sml > 0 else []
    run = Distiller(random_features(case.dim, config.model.frames), config, pool=pool)
    if run.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(run.device)
    for _ in range(case.warmup):  # allocator, lazy initialisation, cuDNN autotuning
        run.train_step()
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
    real_per_step = config.optim.batch_size * (config.optim.n_critic + 1)  # every critic step and the G step draw one
    return {"case": case.name, "lambdas": f"{config.loss.lambda_div:g}/{config.loss.lambda_sml:g}",
            "T": config.model.frames, "D": case.dim, "batch": config.optim.batch_size,
            "n_critic": config.optim.n_critic, "gp_every": config.optim.gp_every, "steps": case.steps,
            "s_per_step": seconds, "steps_per_s": 1 / seconds, "real_per_s": real_per_step / seconds,
            "peak_mb": peak_mb, "params_g": sum(p.numel() for p in run.G.parameters()),
            "params_d": sum(p.numel() for p in run.D.parameters())}


def compare_gp(device: str, steps: int, every: int = 5) -> dict[int, float]:
    """Median seconds per generator step, penalty on every critic step vs every `every`-th, steps interleaved."""
    runs = {}
    for k in (1, every):
        config = load_config("small", [f"optim.gp_every={k}", f"train.device={device}"])
        runs[k] = Distiller(random_features(80, config.model.frames), config, pool=[])
        runs[k].train_step()  # warm-up
    times: dict[int, list[float]] = {k: [] for k in runs}
    for _ in range(steps):  # alternating, so both schedules see the same machine load
        for k, run in runs.items():
            start = time.perf_counter()
            run.train_step()
            if run.device.type == "cuda":
                torch.cuda.synchronize(run.device)
            times[k].append(time.perf_counter() - start)
    return {k: float(np.median(t)) for k, t in times.items()}


def _child(threads: int, queue, fn, *args) -> None:
    torch.set_num_threads(threads)
    queue.put(fn(*args))


def isolated(device: str, threads: int, fn, *args):
    """fn(*args) in a forked child on a CPU, so ru_maxrss is that call's peak; in this process on CUDA."""
    if device != "cpu":
        return fn(*args)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(threads, queue, fn, *args))
    child.start()
    result = queue.get()
    child.join()
    return result


def shape_cases(device: str, steps: int, large_steps: int) -> list[Case]:
    """GAN-CNN and GAN-ATT at the fbank and the HuBERT shape."""
    cases = []
    for arch in ("gan_cnn", "gan_att"):
        # The small preset is GAN-ATT; GAN-CNN runs at the same widths there.
        cases.append(Case(f"{arch} fbank", "small", 80, [f"model.arch={arch}"], steps))
        width = 256 if arch == "gan_cnn" else 128  # paper Sec. 5.1
        large = [f"model.arch={arch}", f"model.g_channels={width}"]
        if device == "cpu":  # a full paper step takes minutes on a CPU
            cases.append(Case(f"{arch} hubert", "paper", 768, large + CPU_LARGE, large_steps, warmup=0))
        else:
            cases.append(Case(f"{arch} hubert", "paper", 768, large, large_steps))
    return cases


def table(rows: list[dict]) -> str:
    """Markdown table of the measurements."""
    lines = ["| case | λ5/λ6 | T x D | batch | n_critic | gp_every | params G / D | steps timed | s / G step "
             "| G steps/s | real samples/s | peak MiB |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['lambdas']} | {r['T']} x {r['D']} | {r['batch']} | {r['n_critic']} "
                     f"| {r['gp_every']} | {r['params_g'] / 1e6:.2f}M / {r['params_d'] / 1e6:.2f}M | {r['steps']} "
                     f"| {r['s_per_step']:.2f} | {r['steps_per_s']:.3g} | {r['real_per_s']:.3g} | {r['peak_mb']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=None, help="timed generator steps (default 3 on CPU, 20 on CUDA)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument("--large-steps", type=int, default=1, help="timed steps of the D=768 cases on CPU")
    args = parser.parse_args()
    device = str(resolve_device(args.device).type)
    steps = args.steps or (3 if device == "cpu" else 20)
    large_steps = args.large_steps if device == "cpu" else steps
    torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name() if device == "cuda" else f"{platform.machine()}, {args.threads} threads"
    print(f"device: {device} ({where}); torch {torch.__version__}")
    if device == "cpu":
        print(f"D=768 cases on CPU: {' '.join(CPU_LARGE)} (paper: 32 and 5), {large_steps} timed step(s), no warm-up; "
              "peak memory is the child process's max RSS (includes the interpreter and torch)")
    rows = []
    for case in shape_cases(device, steps, large_steps):
        rows.append(isolated(device, args.threads, measure, case, device))
        print(f"{case.name}: {rows[-1]['s_per_step']:.2f} s per generator step", flush=True)
    print(table(rows))
    gp = isolated(device, args.threads, compare_gp, device, max(steps, 3))
    print(f"small preset (gan_att, 64 x 80, batch 32, n_critic 5), median of {max(steps, 3)} interleaved steps: "
          f"gp_every=1 {gp[1]:.2f} s, gp_every=5 {gp[5]:.2f} s per generator step -> {gp[1] / gp[5]:.2f}x steps/s")


if __name__ == "__main__":
    main()
