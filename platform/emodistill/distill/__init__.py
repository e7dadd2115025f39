"""Distil a feature table into a generator: config, real-batch sampling, the downstream pool, the GAN loop."""

from emodistill.distill.config import DistillConfig, LossConfig, OptimConfig, PoolConfig, TrainConfig, load_config
from emodistill.distill.data import Normalization, RealBatches
from emodistill.distill.pool import train_pool
from emodistill.distill.trainer import Distiller, Evaluate, distill, fit_gaussian_generator

__all__ = [
    "DistillConfig", "Distiller", "Evaluate", "LossConfig", "Normalization", "OptimConfig", "PoolConfig", "RealBatches",
    "TrainConfig", "distill", "fit_gaussian_generator", "load_config", "train_pool",
]
