"""Trained generator artifacts: save, load, and sample synthetic feature tables."""

from emodistill.generator.artifact import (CONFIG_FILE, WEIGHTS_FILE, artifact_config, load, read_config,
                                           save_generator, save_trained)
from emodistill.generator.sampling import TrainedGenerator, class_counts

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "TrainedGenerator", "artifact_config", "class_counts", "load", "read_config",
           "save_generator", "save_trained"]
