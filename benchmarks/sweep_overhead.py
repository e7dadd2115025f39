"""What the sweep platform costs: per-trial overhead against a plain loop, and memory of concurrent trials.

1. Overhead: the same short distillations (micro GAN-CNN, evaluated twice) run one at a time as a Ray
   Tune sweep (object store, Tune checkpoints, MLflow logging, registry) and as a plain Python loop doing the
   same work (the reference and the baselines logged beside it, then distill() + evaluate_generator() per trial);
   the difference per trial is the platform's overhead. The sweep's start-up is broken down step by step, and the
   same sweep is run again into the store it created (no schema to create) to measure what a new store costs.
2. Memory: 4 trials sharing one larger feature table, run 1 at a time and then 4 at a time (0.5 CPU
   each). While they run we sample the object store (the table must be there once) and every trial
   worker's RSS from /proc (RssShmem: pages mapped from the shared object store; RssAnon: private).

    python benchmarks/sweep_overhead.py [--trials 4] [--out DIR]

Prints a JSON summary and the Markdown for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import ray
import torch
import yaml
from ray import tune
from ray.util.state import list_actors, list_objects

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the feature-table builder the sweep tests use

from emodistill.distill.pool import train_pool  # noqa: E402
from emodistill.distill.trainer import distill  # noqa: E402
from emodistill.downstream import DownstreamConfig  # noqa: E402
from emodistill.evaluate.baselines import evaluate_baselines  # noqa: E402
from emodistill.evaluate.protocol import evaluate_generator, train_reference  # noqa: E402
from emodistill.features.store import load_splits  # noqa: E402
from emodistill.sweep import load_space, run_sweep, runner  # noqa: E402
from emodistill.sweep.space import trial_config, trial_overrides  # noqa: E402
from emodistill.tracking.runs import KIND_TAG  # noqa: E402
from sweep_fixtures import make_feature_dir, micro_space  # noqa: E402

MIB = 2**20
BIG_TABLE = {"sizes": {"train": 1200, "dev": 40, "test": 40}, "dim": 80, "frames": (150, 250)}  # ~77 MiB train


def write_space(path: Path, trials: int, concurrency: int, cpu: float) -> Path:
    """`trials` repeats of the Baseline (no pool) at micro scale, `concurrency` at a time, `cpu` each."""
    micro_space(path)
    data = yaml.safe_load(path.read_text())
    data["search"]["variants"] = {"baseline": {"loss.lambda_div": 0.0, "loss.lambda_sml": 0.0}}
    data.update(trials=trials, max_concurrent_trials=concurrency, resources={"cpu": cpu, "gpu": 0})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def plain_loop(space_path: Path, features: Path, trials: int, out: Path) -> tuple[float, float]:
    """The sweep's work without the platform: the reference and the baselines the sweep logs beside it (the
    selection ladder and the Gaussian at the sweep's budgets), then each trial's distill() + evaluations; (seconds
    in all, seconds of the reference and baselines)."""
    space = load_space(space_path)
    started = time.perf_counter()
    config = trial_config(space, trial_overrides(space, {"variant": "baseline"}))
    splits = load_splits(features, data=config.data)  # the sweep's data protocol (per-speaker normalisation)
    reference = train_reference(splits, DownstreamConfig(**space.evaluation.downstream), space.evaluation.seed,
                                decoders=space.evaluation.decoders)
    eval_config = space.evaluation.eval_config(config.model.arch)
    evaluate_baselines(splits, eval_config, reference, progress=False)
    reference_s = time.perf_counter() - started

    def evaluate(step, generator):
        with torch.enable_grad():
            return evaluate_generator(generator, splits, eval_config, reference, progress=False).metrics

    pool = train_pool(splits["train"], splits["dev"], config.pool) if config.loss.lambda_sml > 0 else None
    for i in range(trials):
        distill(splits["train"], splits["dev"], config, out / f"loop{i}", pool=pool, evaluate=evaluate,
                select=space.objective.metric, overwrite=True, progress=False)  # a rerun with the same --out
    return time.perf_counter() - started, reference_s


def sweep_phases(tracking_uri: str, experiment_id: str, started: float, ended: float) -> dict[str, float]:
    """Where a sweep's seconds went, from its trials' MLflow runs (wall-clock start and end, in ms) and the sweep's
    own start and end (time.time()): before the first trial's run (checks, reference, worker start-up and imports),
    inside the trials' runs, between them (Tune's scheduling and checkpoint syncing), and after the last one (the
    comparison figure, the model logged and registered); and when the first trial's run started (time.time())."""
    from mlflow.tracking import MlflowClient

    runs = MlflowClient(tracking_uri).search_runs([experiment_id])
    trials = sorted((r.info.start_time / 1000, r.info.end_time / 1000) for r in runs
                    if r.data.tags.get(KIND_TAG) == "trial" and r.info.end_time)
    return {"first_trial_start": trials[0][0], "before_first_trial_s": round(trials[0][0] - started, 1),
            "in_trials_s": round(sum(end - start for start, end in trials), 1),
            "between_trials_s": round(sum(b[0] - a[1] for a, b in zip(trials, trials[1:])), 1),
            "after_last_trial_s": round(ended - trials[-1][1], 1), "trial_runs": len(trials)}


class StartMarks:
    """Wall-clock times (time.time()) at which the sweep's driver reached each step of its start-up, taken by wrapping
    the functions run_sweep calls in order (a timer around each: the functions themselves run unchanged)."""

    STEPS = (("connected", runner, "check_tracking_uri"),  # the first call once Ray is joined
             ("parent_run", runner, "start_parent_run"),
             ("inputs", runner, "_trainable"),  # the reference trained and logged, the tables put in the store
             ("fit", tune.Tuner, "fit"))

    def __init__(self):
        self.times: dict[str, float] = {}
        self.originals: list[tuple[object, str, object]] = []  # what __exit__ puts back

    def __enter__(self) -> StartMarks:
        for label, owner, name in self.STEPS:
            original = getattr(owner, name)
            self.originals.append((owner, name, original))
            setattr(owner, name, self._timed(label, original))
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, original in self.originals:
            setattr(owner, name, original)

    def _timed(self, label: str, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            self.times.setdefault(f"{label}_start", time.time())
            try:
                return function(*args, **kwargs)
            finally:
                self.times.setdefault(f"{label}_end", time.time())
        return timed

    def phases(self, started: float, first_trial: float) -> dict[str, float]:
        """The seconds from the sweep's start to its first trial's run, step by step."""
        t = self.times
        return {"checks_s": round(t["connected_start"] - started, 2),
                "parent_run_s": round(t["parent_run_end"] - t["parent_run_start"], 2),
                "reference_and_shared_tables_s": round(t["inputs_end"] - t["inputs_start"], 2),
                "tuner_set_up_s": round(t["fit_start"] - t["inputs_end"], 2),
                "tune_start_to_first_trial_run_s": round(first_trial - t["fit_start"], 2),
                "unaccounted_s": round((t["parent_run_start"] - t["connected_start"])
                                       + (t["inputs_start"] - t["parent_run_end"]), 2)}


def trainable_import_seconds() -> float:
    """Seconds a fresh interpreter with Ray imported takes to import the trial function's module (torch, MLflow,
    emodistill): what a new trial worker pays before it can run the first trial."""
    code = ("import time, ray; t = time.perf_counter(); import emodistill.sweep.trainable; "
            "print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return round(float(out.stdout.strip()), 2)


def own_cluster() -> str:
    """The GCS address of the Ray this process started: the state API would refuse to choose among the other Ray
    instances of a shared machine."""
    return ray.get_runtime_context().gcs_address


def object_store_bytes() -> int:
    """Bytes of all objects in the store (list_objects has a row per reference holder: count each once)."""
    sizes = {o.object_id: o.object_size or 0 for o in list_objects(address=own_cluster(), limit=10000,
                                                                   raise_on_missing_output=False)}
    return sum(sizes.values())


class Sampler(threading.Thread):
    """Every 0.5 s: object-store bytes added since the start, and each live trial worker's RSS (peak per pid).

    Since the start, because Tune's with_parameters registry keeps an earlier sweep's inputs alive until
    the driver process exits.
    """

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.store_before, self.store_peak, self.workers = object_store_bytes(), 0, {}

    def run(self) -> None:
        while not self.stop.is_set():
            self.store_peak = max(self.store_peak, object_store_bytes() - self.store_before)
            for pid in trial_worker_pids():
                rss = read_rss(pid)
                if rss:
                    peak = self.workers.setdefault(pid, rss)
                    self.workers[pid] = {k: max(peak[k], rss[k]) for k in rss}
            time.sleep(0.5)


def trial_worker_pids() -> list[int]:
    """Pids of the live trial workers (Tune runs a function trainable in a `...ImplicitFunc` actor)."""
    actors = list_actors(address=own_cluster(), detail=True, limit=10000, raise_on_missing_output=False)
    return [a.pid for a in actors if a.class_name.endswith("ImplicitFunc") and a.state == "ALIVE" and a.pid]


def read_rss(pid: int) -> dict[str, int] | None:
    """VmRSS, RssAnon and RssShmem of a process in bytes (None once it has exited)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:
        return None
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    return {key: int(fields[key].split()[0]) * 1024 for key in ("VmRSS", "RssAnon", "RssShmem")}


def memory_run(space: Path, features: Path, work: Path, name: str) -> dict:
    """Run a sweep while sampling; peak object store and per-trial-worker RSS in MiB."""
    sampler = Sampler()
    sampler.start()
    started = time.perf_counter()
    run_sweep(space, features, name=name, tracking_uri=f"sqlite:///{work / 'mlruns.db'}",
              storage_path=work / "sweeps")
    seconds = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    workers = list(sampler.workers.values())
    return {"seconds": round(seconds, 1), "object_store_added_peak_mib": round(sampler.store_peak / MIB, 1),
            "trial_workers": len(workers),
            "per_worker_rss_mib": [round(w["VmRSS"] / MIB) for w in workers],
            "per_worker_anon_mib": [round(w["RssAnon"] / MIB) for w in workers],
            "per_worker_shmem_mib": [round(w["RssShmem"] / MIB) for w in workers]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--out", type=Path, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="sweep-overhead-"))
    torch.set_num_threads(1)
    small = make_feature_dir(work / "small")
    big = make_feature_dir(work / "big", **BIG_TABLE)
    big_mib = (big / "train.arrow").stat().st_size / MIB

    started = time.perf_counter()
    ray.init(address="local", num_cpus=2)
    ray_init = time.perf_counter() - started

    serial = write_space(work / "serial.yaml", args.trials, concurrency=1, cpu=1)
    started, wall = time.perf_counter(), time.time()
    with StartMarks() as marks:
        result = run_sweep(serial, small, name="overhead", tracking_uri=f"sqlite:///{work / 'mlruns.db'}",
                           storage_path=work / "sweeps")
    sweep_s = time.perf_counter() - started
    phases = sweep_phases(f"sqlite:///{work / 'mlruns.db'}", result.experiment_id, wall, wall + sweep_s)
    phases["start_up"] = marks.phases(wall, phases.pop("first_trial_start"))
    phases["start_up"]["trainable_import_s"] = trainable_import_seconds()
    started = time.perf_counter()  # the same sweep again, into the store that now has its schema
    run_sweep(serial, small, name="overhead-again", tracking_uri=f"sqlite:///{work / 'mlruns.db'}",
              storage_path=work / "sweeps")
    again_s = time.perf_counter() - started
    loop_s, reference_s = plain_loop(serial, small, args.trials, work)

    memory = {concurrency: memory_run(write_space(work / f"mem{concurrency}.yaml", 4, concurrency, cpu=0.5),
                                      big, work, f"memory-{concurrency}")
              for concurrency in (1, 4)}
    ray.shutdown()
    summary = {"trials": args.trials, "ray_init_s": round(ray_init, 1), "sweep_s": round(sweep_s, 1),
               "loop_s": round(loop_s, 1), "overhead_per_trial_s": round((sweep_s - loop_s) / args.trials, 1),
               "sweep_existing_store_s": round(again_s, 1),
               "overhead_per_trial_existing_store_s": round((again_s - loop_s) / args.trials, 1),
               "loop_reference_s": round(reference_s, 1), "sweep_phases": phases,
               "feature_table_mib": round(big_mib, 1), "memory": memory}
    print(json.dumps(summary, indent=2))
    print(markdown(summary))


START_UP_ROWS = {
    "checks_s": "checks (the index, the store, the server, the storage) and joining Ray (trial resources checked)",
    "parent_run_s": "the parent run started",
    "reference_and_shared_tables_s": "the reference trained and logged, the tables put in the object store",
    "tuner_set_up_s": "the Tuner built, the sweep's state digests recorded",
    "tune_start_to_first_trial_run_s": "Tune's start to the first trial's run (scheduling, the worker's start and "
                                       "imports, the trial's set-up)",
    "unaccounted_s": "between those steps (the experiment found, sweep.json written)",
    "trainable_import_s": "(the trial module's imports in a fresh interpreter with Ray imported, measured apart)",
}


def markdown(s: dict) -> str:
    """The RESULTS.md rows for this run."""
    rows = [
        f"| sweep of {s['trials']} micro trials, 1 at a time (after ray.init {s['ray_init_s']} s) | {s['sweep_s']} s |",
        f"| the same runs in a plain loop | {s['loop_s']} s |",
        f"| platform overhead per trial | {s['overhead_per_trial_s']} s |",
        f"| the same sweep again, into the store that now has its schema / its overhead per trial "
        f"| {s['sweep_existing_store_s']} s / {s['overhead_per_trial_existing_store_s']} s |",
        f"| ... the sweep before its first trial's run (checks, reference, baselines, worker start-up) / the loop's "
        f"reference and baselines "
        f"| {s['sweep_phases']['before_first_trial_s']} s / {s['loop_reference_s']} s |",
        *[f"| ... ... {START_UP_ROWS[key]} | {value} s |" for key, value in s["sweep_phases"]["start_up"].items()],
        f"| ... inside the {s['sweep_phases']['trial_runs']} trials' runs / the loop's trials "
        f"| {s['sweep_phases']['in_trials_s']} s / {round(s['loop_s'] - s['loop_reference_s'], 1)} s |",
        f"| ... between the trials' runs | {s['sweep_phases']['between_trials_s']} s |",
        f"| ... after the last trial's run (figure, model logged and registered) "
        f"| {s['sweep_phases']['after_last_trial_s']} s |",
    ]
    for concurrency, m in s["memory"].items():
        rows.append(f"| 4 trials, {concurrency} at a time, one {s['feature_table_mib']} MiB train table: object store "
                    f"peak, added by the sweep | {m['object_store_added_peak_mib']} MiB |")
        rows.append(f"| ... per trial worker RSS / private (anon) / shared (shmem) | {m['per_worker_rss_mib']} / "
                    f"{m['per_worker_anon_mib']} / {m['per_worker_shmem_mib']} MiB |")
    return "| measure | value |\n| --- | --- |\n" + "\n".join(rows)


if __name__ == "__main__":
    main()
