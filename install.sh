#!/usr/bin/env bash
# Install everything emodistill needs into ./.venv, with the pinned versions CI uses.
# CPU torch 2.13.0 comes first and pinned: an unpinned torch would pull a multi-GB CUDA build.
# CUDA users: see README ("Installing on a GPU machine").
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}

# Debian packages: libsndfile for soundfile on platforms whose wheel does not bundle it.
if command -v apt-get >/dev/null 2>&1 && ! dpkg -s libsndfile1 >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends libsndfile1
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt torch==2.13.0
.venv/bin/python -m pip install -q -c constraints.txt -e '.[dev,s3]'
echo "emodistill installed in $(pwd)/.venv"
