"""What the distillation benchmarks share: corpus draws, the scoring protocol, generators with their learning
curves, and summaries over draws x seeds.

A *draw* is one embedded corpus (a preset synthesised with a seed) tested on one leave-one-session-out fold: a
recipe is judged on several, never on one. A *seed* varies, within a draw, a generator's training, the samples
drawn from it and the downstream's initialisation together. Every score is the product's protocol: a downstream
trained on one source only, its checkpoint chosen on the real dev split, UAR and accuracy on the real test split.
"""

from __future__ import annotations

import json
import os
import re
import resource
import sys
import time
from concurrent.futures import Future, as_completed
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "platform"))  # a source checkout, not installed

from emodistill.distill import distill, load_config  # noqa: E402
from emodistill.downstream import (Downstream, DownstreamConfig, accuracy, build_downstream, predict,  # noqa: E402
                                   train_downstream, uar)
from emodistill.evaluate.protocol import repeat_seed, selection_metric  # noqa: E402
from emodistill.evaluate.stats import mcnemar, mean_ci  # noqa: E402
from emodistill.features.splits import DataConfig  # noqa: E402
from emodistill.features.store import dataset_fingerprint, load_splits  # noqa: E402
from emodistill.generator import class_counts, load  # noqa: E402

# The protocol's downstream for every score (s3prl's recipe, shortened: the training sets are small).
DOWNSTREAM = DownstreamConfig(max_steps=1000, eval_every=100, device="cpu")
# The decoders other than linear project every frame (linear projects the mean frame alone): they train on random
# windows of this many frames of each training utterance, whatever its source (a generated one is shorter), and
# are evaluated on whole utterances. It costs them nothing measured on real data and divides their time by ~4.
DECODER_FRAMES = 100
SELECT_DRAWS = 2  # samples + downstreams averaged per checkpoint evaluation of a generator (at ppc 100)
SELECT_PPC = 100
RECORD_FILE = "benchmark.json"  # beside a trained generator: its curve and cost, reused by a later run
PROTOCOLS = {  # the data protocols measured: how dev is held out, whether features are normalised per speaker
    "utterance": DataConfig(),
    "speaker": DataConfig(dev_by="speaker"),
    "utterance+norm": DataConfig(normalize="speaker"),
    "speaker+norm": DataConfig(dev_by="speaker", normalize="speaker"),
}


@dataclass(frozen=True)
class Draw:
    """One embedded corpus (preset, synthesis seed) and the fold it is tested on."""

    preset: str
    seed: int
    fold: int

    @property
    def name(self) -> str:
        """`small-s1-f1`: preset, corpus seed, fold."""
        return f"{self.preset}-s{self.seed}-f{self.fold}"


def parse_draws(text: str) -> list[Draw]:
    """`small:1:1,default:0:3` (preset:corpus seed:fold, comma-separated) -> draws."""
    draws = []
    for part in text.split(","):
        match = re.fullmatch(r"(tiny|small|default):(\d+):([1-5])", part.strip())
        if match is None:
            raise SystemExit(f"--draws: {part!r} is not preset:seed:fold (e.g. small:1:1, default:0:3)")
        draws.append(Draw(match.group(1), int(match.group(2)), int(match.group(3))))
    return draws


def prepare(work: Path, draw: Draw) -> str:
    """The fbank features of the draw's corpus (every fold), synthesised and extracted once under `work`."""
    from emodistill.features.extract import embedded_features

    return str(embedded_features(work / "corpora" / f"{draw.preset}-s{draw.seed}", draw.preset, draw.seed,
                                 f"espeak-{draw.preset}-s{draw.seed}", progress=False))


_splits: dict[tuple, dict] = {}


def splits(features: str, fold: int, protocol: str) -> dict:
    """The splits of a draw under a protocol, opened once per process; one torch thread per process."""
    key = (features, fold, protocol)
    if key not in _splits:
        import torch

        torch.set_num_threads(1)
        _splits[key] = load_splits(features, fold, PROTOCOLS[protocol])
    return _splits[key]


def score(s: dict, train_set, seed: int, decoder: str = "linear", keep_model: bool = False) -> dict:
    """The protocol on one training set: downstream `decoder`, checkpoint by real dev UAR, test UAR, accuracy and
    predictions (with `keep_model`, the model's weights too)."""
    config = DOWNSTREAM.model_copy(update={"seed": seed, "decoder": decoder,
                                           "max_frames": None if decoder == "linear" else DECODER_FRAMES})
    trained = train_downstream(train_set, s["dev"], config, progress=False)
    pred = predict(trained.model, s["test"], device="cpu")
    cell = {"uar": float(uar(s["test"].labels, pred)), "acc": float(accuracy(s["test"].labels, pred)),
            "dev": float(trained.dev_uar), "pred": pred.tolist(), "seconds": trained.train_seconds}
    if keep_model:
        cell["model"] = {k: v.numpy() for k, v in trained.model.state_dict().items()}
    return cell


def rebuild(cell: dict, s: dict) -> Downstream:
    """The linear downstream a cell kept (`keep_model`), rebuilt."""
    import torch

    model = build_downstream("linear", s["train"].dim, len(s["train"].label_names), DOWNSTREAM.hidden)
    model.load_state_dict({k: torch.as_tensor(v) for k, v in cell["model"].items()})
    return model.eval()


def budget_counts(train, budget: str) -> dict[str, int]:
    """Utterances per label of a budget key (`ppc{N}`, balanced; `full`: as many as the real training split)."""
    total = len(train) if budget == "full" else None
    counts = class_counts(0 if total else int(budget[3:]), train.label_names, train.class_counts(), total=total)
    return {name: int(c) for name, c in zip(train.label_names, counts)}


def train_generator(features: str, fold: int, protocol: str, preset: str, overrides: list[str], seed: int, out: str,
                    pools: str, choose_by: str = "linear") -> dict:
    """Distil one generator on a draw, choosing its checkpoint on dev (SELECT_DRAWS draws at ppc 100 every
    train.eval_every steps, each scored by a `choose_by` downstream); its learning curve (dev and test UAR at each
    evaluation, by the same decoder: test is only recorded, never read by the choice) and its cost."""
    s = splits(features, fold, protocol)
    data = PROTOCOLS[protocol]
    config = load_config(preset, [*overrides, f"train.seed={seed}", "train.device=cpu",
                                  f"data.dev_by={data.dev_by}", f"data.normalize={data.normalize}"])
    record = Path(out) / RECORD_FILE
    if record.is_file():  # trained by an earlier run with the same config: its record, curve included
        earlier = json.loads(record.read_text())
        if (earlier.get("config"), earlier.get("decoder", "linear")) == (config.model_dump(mode="json"), choose_by):
            return earlier
    counts = budget_counts(s["train"], f"ppc{SELECT_PPC}")
    metric = selection_metric(SELECT_PPC, choose_by)
    curve, started = [], time.perf_counter()

    def evaluate(step, generator):
        seeds = [repeat_seed(seed, d) for d in range(SELECT_DRAWS)]
        cells = [score(s, generator.sample_features(counts, seed=d), d, choose_by) for d in seeds]
        curve.append({"step": step, "seconds": time.perf_counter() - started,
                      "dev": float(np.mean([c["dev"] for c in cells])),
                      "test": float(np.mean([c["uar"] for c in cells]))})
        return {metric: curve[-1]["dev"]}

    path = distill(s["train"], s["dev"], config, out, evaluate=evaluate, select=metric,
                   pool_cache_dir=pools, features_fingerprint=dataset_fingerprint(features, fold, data),
                   overwrite=True, progress=False)  # this script caches by its own record, not by the run folder
    generator = load(path)
    selected = generator.config["metrics"].get("selected_step")
    chosen = next((p for p in curve if p["step"] == selected), None)
    result = {"path": str(path), "curve": curve, "seconds": time.perf_counter() - started, "selected_step": selected,
              "seconds_to_selected": chosen["seconds"] if chosen else None,
              "chosen_dev": chosen["dev"] if chosen else None, "chosen_test": chosen["test"] if chosen else None,
              "steps": generator.config["metrics"]["steps"], "parameters": generator.num_parameters,
              "decoder": choose_by, "config": config.model_dump(mode="json")}
    record.write_text(json.dumps(result))
    return result


def results(futures: dict[object, Future], stage: str) -> dict:
    """Key -> result of each future, with one progress bar for the stage (on stderr)."""
    from tqdm import tqdm

    for _ in tqdm(as_completed(futures.values()), total=len(futures), desc=stage, unit="job"):
        pass
    return {key: future.result() for key, future in futures.items()}


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def summary(values: list[float]) -> dict:
    """Mean and 95 % CI of values (fractions), with the values."""
    ci = mean_ci(values)
    return {"values": list(values), "mean": ci.mean, "low": ci.low, "high": ci.high}


def paired_difference(values: list[float], versus: list[float]) -> dict:
    """Mean and 95 % CI of the paired differences values - versus, in UAR points."""
    return summary([100 * (a - b) for a, b in zip(values, versus)])


def median_p(y_true: list[int], preds_a: list[list[int]], preds_b: list[list[int]]) -> float:
    """Median over seed pairs of McNemar's p between two sources' predictions (seed i against seed i)."""
    return float(np.median([mcnemar(y_true, a, b).pvalue for a, b in zip(preds_a, preds_b)]))


def pct(s: dict | None) -> str:
    """`58.7 ± 2.1` (mean ± CI half-width, in %), or — for None."""
    if s is None:
        return "—"
    return f"{100 * s['mean']:.1f} ± {100 * (s['high'] - s['low']) / 2:.1f}"


def points(s: dict | None) -> str:
    """`+1.2 ± 3.0` (points, mean ± CI half-width), or — for None."""
    if s is None:
        return "—"
    return f"{s['mean']:+.1f} ± {(s['high'] - s['low']) / 2:.1f}"


def protocol_seed(seed_index: int) -> int:
    """The seed of seed index i for sampling and downstream initialisation (the evaluation protocol's repeats)."""
    return repeat_seed(0, seed_index)
