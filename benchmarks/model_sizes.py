"""Parameter counts and float32 sizes of the generators and the critic, next to the paper's Table 1.

Run: python benchmarks/model_sizes.py
"""

from __future__ import annotations

from emodistill.models import ModelConfig, build_discriminator, build_generator, count_parameters, size_mb

PAPER_MB = {"gan_cnn": 100.0, "gan_att": 60.0}  # Table 1 (HuBERT Base features): GAN-CNN 0.1 GB, GAN-ATT 0.06 GB
SHAPES = {"HuBERT Base": (200, 768), "fbank": (100, 80)}
N_CLASSES = 4


def rows():
    """(features, T, D, model, channels, parameters, MB, paper MB) for each shape and model at the paper's widths."""
    for name, (frames, dim) in SHAPES.items():
        for arch in ("gan_cnn", "gan_att"):
            config = ModelConfig(arch=arch, frames=frames, dim=dim, n_classes=N_CLASSES)
            generator = build_generator(config)
            paper = PAPER_MB[arch] if name == "HuBERT Base" else None
            params, mb = count_parameters(generator), size_mb(generator)
            yield name, frames, dim, f"{arch} G", config.g_channels, params, mb, paper
        config = ModelConfig(frames=frames, dim=dim, n_classes=N_CLASSES)
        critic = build_discriminator(config)
        yield name, frames, dim, "critic D", config.d_channels, count_parameters(critic), size_mb(critic), None


def main():
    header = ("features", "T", "D", "model", "channels", "parameters", "MB", "paper MB")
    print("{:<12} {:>4} {:>4}  {:<10} {:>8} {:>12} {:>8} {:>9}".format(*header))
    for name, frames, dim, model, channels, params, mb, paper in rows():
        paper_text = f"{paper:.0f}" if paper is not None else "-"
        print(f"{name:<12} {frames:>4} {dim:>4}  {model:<10} {channels:>8} {params:>12,} {mb:>8.1f} {paper_text:>9}")


if __name__ == "__main__":
    main()
