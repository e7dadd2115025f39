"""Trained generator artifacts: save, load, and sample synthetic feature tables."""

from emodistill.generator.artifact import artifact_config, load, read_config, save_generator
from emodistill.generator.sampling import TrainedGenerator, class_counts

__all__ = ["TrainedGenerator", "artifact_config", "class_counts", "load", "read_config", "save_generator"]
