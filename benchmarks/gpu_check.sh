#!/usr/bin/env bash
# GPU check, one command, <= 8 minutes: prints JSON with the GPU's name, training images/s of the `gpu` and
# `paper` presets fed by N generator actors, their data-wait share, the in-memory ceiling, peak GPU memory.
#   GENERATORS (default 4)  generator actors, 1 CPU each (the target: <= 4 generator cores per GPU)
#   BATCH (default 512), LOOP_SECONDS (default 40 per loop), OUT (default .): where gpu_check.json goes
# Needs the project set up (bash cluster/setup.sh picks a CUDA torch when nvidia-smi works).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/synthstream ] || bash cluster/setup.sh
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
exec timeout 480 .venv/bin/synthstream bench train --gpu --preset gpu --preset paper --style wikipedia \
    --batch "${BATCH:-512}" --seconds "${LOOP_SECONDS:-40}" --generators "${GENERATORS:-4}" --generator-cpus 1 \
    --json "${OUT:-.}/gpu_check.json"
