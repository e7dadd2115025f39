"""emodistill: distil a speech-emotion dataset into a small conditional generator."""

__version__ = "0.1.0"


def best_generator(experiment: str, metric: str | None = None, tracking_uri: str | None = None,
                   champion: bool = False):
    """Load the best generator of a sweep: its latest sweep's best trial by `metric` (default: the objective the
    sweep recorded; a dev score, test scores are refused) by the rule that registers its champion, or with
    champion=True the registry's champion."""
    from emodistill.tracking.best import best_generator as _best_generator

    return _best_generator(experiment, metric=metric, tracking_uri=tracking_uri, champion=champion)


def best_distilled_set(experiment: str, ppc: int, metric: str | None = None, tracking_uri: str | None = None):
    """The distilled set of `ppc` per class that a sweep's best trial (by `metric`, default the sweep's objective)
    logged, checked against its recorded SHA-256, as a pyarrow.Table in the feature-table schema."""
    from emodistill.tracking.best import best_distilled_set as _best_distilled_set

    return _best_distilled_set(experiment, ppc, metric=metric, tracking_uri=tracking_uri)
