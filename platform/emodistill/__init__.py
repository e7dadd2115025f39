"""emodistill: distil a speech-emotion dataset into a small conditional generator."""

__version__ = "0.1.0"


def best_generator(experiment: str, metric: str | None = None, tracking_uri: str | None = None,
                   champion: bool = False):
    """Load the best generator of a sweep: highest `metric` (default: the objective the sweep recorded, a dev
    score) among its finished trials, or the registry's champion."""
    from emodistill.tracking.best import best_generator as _best_generator

    return _best_generator(experiment, metric=metric, tracking_uri=tracking_uri, champion=champion)
