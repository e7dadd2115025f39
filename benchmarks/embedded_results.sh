#!/usr/bin/env bash
# The README's results table: the embedded corpus (small preset) -> fbank -> Baseline and L_DIV+L_SML
# GAN-ATT generators (small preset) -> the evaluation protocol with baselines. CPU, ~30 minutes on 2 cores.
# Usage: bash benchmarks/embedded_results.sh [WORK_DIR]   (default: runs/embedded_results)
set -euo pipefail
WORK=${1:-runs/embedded_results}
mkdir -p "$WORK"
emodistill corpus synth --preset small --seed 0 --out "$WORK/corpus"
emodistill features extract --corpus "$WORK/corpus" --out "$WORK/features"
emodistill distill --features "$WORK/features" --config small --out "$WORK/baseline" \
    --set loss.lambda_div=0 --set loss.lambda_sml=0
emodistill distill --features "$WORK/features" --config small --out "$WORK/distilled" \
    --set loss.lambda_div=1 --set loss.lambda_sml=1
emodistill evaluate --features "$WORK/features" --corpus "$WORK/corpus" --out "$WORK/evaluation" \
    --generator baseline="$WORK/baseline/generator" --generator distilled="$WORK/distilled/generator" \
    --budgets 50 100 --repeats 3 --downstream-steps 1000
