"""Turn a SearchSpace into Ray Tune pieces: param space, search algorithm, scheduler, TuneConfig."""

from __future__ import annotations

import optuna
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from emodistill.sweep.space import FOLD_KEY, VARIANT_KEY, CategoricalParam, FloatParam, GridSearch, Param, SearchSpace


class DefineByRun:
    """Optuna define-by-run space: a param is sampled only when its `when` conditions hold.

    A class rather than a closure so Tune can pickle the searcher into its experiment state
    (needed by `Tuner.restore`).
    """

    def __init__(self, params: dict[str, Param]):
        self.params = params

    def __call__(self, trial: optuna.Trial) -> None:
        chosen = {}
        for name, param in self.params.items():
            if any(chosen.get(key) != value for key, value in param.when.items()):
                continue
            if isinstance(param, CategoricalParam):
                chosen[name] = trial.suggest_categorical(name, param.choices)
            elif isinstance(param, FloatParam):
                chosen[name] = trial.suggest_float(name, param.low, param.high, log=param.log)
            else:
                chosen[name] = trial.suggest_int(name, param.low, param.high, log=param.log)


def param_space(space: SearchSpace) -> dict:
    """The Tune param space: grid axes for a grid search (the folds one more when it lists several); empty (the
    searcher proposes) otherwise."""
    if not isinstance(space.search, GridSearch):
        return {}
    grid = {key: tune.grid_search(values) for key, values in space.search.grid.items()}
    if space.search.variants:
        grid[VARIANT_KEY] = tune.grid_search(list(space.search.variants))
    if space.folds is not None and len(space.folds) > 1:
        grid[FOLD_KEY] = tune.grid_search(list(space.folds))
    return grid


def evaluation_rounds(steps: int, eval_every: int) -> int:
    """How many times a trial reports (at every evaluation, and at its last step), the unit ASHA counts in."""
    return -(-steps // eval_every)


def tune_config(space: SearchSpace, rounds: int) -> tune.TuneConfig:
    """Objective, trial count, concurrency, and the searcher/scheduler the space asks for."""
    search = space.search
    common = dict(metric=space.objective.metric, mode=space.objective.mode,
                  max_concurrent_trials=space.max_concurrent_trials, reuse_actors=space.reuse_actors)
    if isinstance(search, GridSearch):
        return tune.TuneConfig(num_samples=space.trials, **common)
    sampler = (optuna.samplers.TPESampler(seed=search.seed) if search.type == "optuna"
               else optuna.samplers.RandomSampler(seed=search.seed))
    searcher = OptunaSearch(space=DefineByRun(search.params), sampler=sampler,
                            metric=space.objective.metric, mode=space.objective.mode)
    scheduler = None
    if search.scheduler is not None:
        # max_t beyond the last report (a trial reports every round, then once more with its chosen scores):
        # reaching max_t means STOP, which would kill a trial that is about to save its generator.
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=rounds + 2,
                                  grace_period=min(search.scheduler.grace_period, rounds),
                                  reduction_factor=search.scheduler.reduction_factor)
    return tune.TuneConfig(num_samples=space.trials, search_alg=searcher, scheduler=scheduler, **common)

