"""What a sweep prints while it runs: one line per evaluation round instead of Tune's status tables.

Every trial reports once per evaluation round (`train.eval_every` generator steps) and once more with the scores of
its chosen checkpoint. A round's line is printed when every trial of the sweep has reported it (or a later one), or
ended: how many trials reported it, and the best and median objective with the best trial's name. A trial that
fails gets a line saying why (a killed worker: Ray's exit detail), at each retry and when it gives up.
`emodistill --verbose` runs Tune's own reporter instead.
"""

from __future__ import annotations

import math
import os
import re
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ray import tune

from emodistill.sweep.names import trial_name
from emodistill.sweep.space import SearchSpace, trial_config, trial_overrides

CHOSEN_KEY = "selected_step"  # only in a trial's last report, with its chosen checkpoint's scores


class RoundReporter(tune.Callback):
    """Prints one line per completed evaluation round, and one per failed trial."""

    def __init__(self, space: SearchSpace, rounds: int):
        self.space, self.rounds = space, rounds
        self.total = 0  # trials the sweep will run
        self.started = time.monotonic()
        self.scores: dict[int, dict[str, float]] = {}  # round -> trial id -> objective
        self.names: dict[str, str] = {}
        self.ended: set[str] = set()
        self.printed = 0
        self.stepped = False

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info) -> None:
        """Tune tells how many trials will run."""
        self.total = total_num_samples or 0
        self.started = time.monotonic()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        """Record an evaluation round's objective (the last report, the chosen scores, is no round)."""
        if CHOSEN_KEY not in result:
            self.names.setdefault(trial.trial_id, self._name(trial))
            self.scores.setdefault(result["training_iteration"], {})[trial.trial_id] = result.get(
                self.space.objective.metric, math.nan)
            self._print_complete_rounds()

    def on_step_begin(self, iteration, trials, **info) -> None:
        """Trials that had ended before a resume report nothing: they count as ended from the first step."""
        if not self.stepped:
            self.stepped = True
            self.ended |= {trial.trial_id for trial in trials if trial.is_finished()}

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        """A trial that ends (finished, or stopped by the scheduler) reports no later round."""
        self._end(trial)

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        """Say which trial failed and why (a killed worker's exit detail), and that it restarts from its checkpoint."""
        print(f"trial {self._name(trial)} failed ({failure_detail(trial)}); retrying it from its last checkpoint "
              f"(retry {trial.num_failures} of {self.space.max_failures})", flush=True)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        """Say which trial failed and why; its MLflow run has the reason too."""
        print(f"trial {self._name(trial)} failed ({failure_detail(trial)})", flush=True)
        self._end(trial)

    def _end(self, trial) -> None:
        self.ended.add(trial.trial_id)
        self._print_complete_rounds()

    def _name(self, trial) -> str:
        """The trial's name, as its MLflow run has it."""
        config = trial_config(self.space, trial_overrides(self.space, trial.config))
        return trial_name(self.space, trial.config, config, trial.trial_id)

    def _print_complete_rounds(self) -> None:
        while self._complete(self.printed + 1):
            self.printed += 1
            if self.printed in self.scores:  # else reported before the sweep was resumed
                print(self._line(self.printed), flush=True)

    def _complete(self, round_: int) -> bool:
        """No trial can report `round_` any more: each reported it or a later round, or ended."""
        latest: dict[str, int] = {}
        for reported, scores in self.scores.items():
            for trial_id in scores:
                latest[trial_id] = max(latest.get(trial_id, 0), reported)
        past = {trial_id for trial_id, last in latest.items() if last >= round_} | self.ended
        # A resumed sweep starts afresh here: its rounds before the resume were reported by the earlier run.
        return len(past) >= self.total and any(reported >= round_ for reported in self.scores)

    def _line(self, round_: int) -> str:
        """`evaluation round 1/2 (1 min 20 s): 4 trial(s), dev_uar_ppc20 best 0.412 (gan_cnn · div_sml), median
        0.300`."""
        reported = self.scores[round_]
        scores = {trial_id: value for trial_id, value in reported.items() if math.isfinite(value)}
        minutes, seconds = divmod(int(time.monotonic() - self.started), 60)
        of = f"/{self.rounds}" if round_ <= self.rounds else ""  # a trial may run longer than the base config
        head = f"evaluation round {round_}{of} ({minutes} min {seconds} s): {len(reported)} trial(s)"
        if not scores:
            return head
        best = max(scores, key=scores.get)
        return (f"{head}, {self.space.objective.metric} best {scores[best]:.3f} ({self.names[best]}), "
                f"median {statistics.median(scores.values()):.3f}")


# How Ray tells why a worker ended (its exit type and detail: killed by a signal, by the memory monitor, ...).
EXIT_DETAIL = re.compile(r"Worker exit detail: (.+)")
OOM = "running low on memory"


def failure_detail(trial) -> str:
    """One line on why the trial's latest attempt failed, from the error Tune recorded for it: Ray's exit detail of
    a dead worker (or its out-of-memory notice), else the error's last line."""
    text = _latest_error(trial)
    if OOM in text:
        return next(line.strip() for line in text.splitlines() if OOM in line)
    detail = EXIT_DETAIL.search(text)
    if detail:  # its first two sentences: what happened; Ray's list of possible causes follows
        return f"its worker died: {' '.join(detail.group(1).split('. ')[:2]).rstrip('.')}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no error recorded"


def _latest_error(trial) -> str:
    """The text of the trial's latest failure in its error file (Tune appends one `Failure # N` block each)."""
    try:
        text = Path(trial.error_file).read_text(errors="replace") if trial.error_file else ""
    except OSError:
        text = ""
    text = text or trial.get_error() or ""
    return re.split(r"^Failure # \d+.*$", text, flags=re.MULTILINE)[-1]


@contextmanager
def legacy_tune_output() -> Iterator[None]:
    """Tune's legacy console engine for the block: the new one (Ray's default) prints its configuration box,
    TensorBoard hint and final table even at verbose=0, and ignores a custom reporter."""
    previous = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["RAY_AIR_NEW_OUTPUT"]
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = previous
