#!/usr/bin/env bash
# GPU training, one command, <= 9 minutes on one GPU: trains `wikipedia` (on the paper's uniform letters,
# `wikipedia_letters`, read under the two-word prior as the shipped model is) and `facebook` with the
# `cpu-columns` network (the shipped models' network; PRESET=gpu-columns for the wide one, whose 80M-parameter
# export is 164 MB) for a fixed wall budget each (synthetic data only), evaluates each on the real dev halves
# (beam 16 with the 9-shift ensemble, as the shipped models are read) where REAL holds them, and leaves under $OUT:
#   wikipedia.pt, facebook.pt        exported models (float16, for trainer/models/)
#   eval_wikipedia.json, eval_facebook.json   `synthstream eval` reports on ../shared/data/real-captchas
#   gpu_train.json                   throughput and final validation figures of both runs, the GPU's name
# Settings (environment): MINUTES (3.3 per style), GENERATORS (4), BATCH (256), PRESET (cpu-columns), SHIFTS (9),
# CALIBRATE (100 synthetic captchas for the temperature), DEVICE (--gpu; set DEVICE= to rehearse on a CPU),
# REAL (../shared/data/real-captchas), OUT (out/gpu_train), RUNS (a scratch folder).
# Re-running with the same RUNS continues each run from its newest checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/synthstream ] || bash cluster/setup.sh
OUT="${OUT:-out/gpu_train}"; RUNS="${RUNS:-$(mktemp -d)}"; REAL="${REAL:-../shared/data/real-captchas}"
DEVICE="${DEVICE---gpu}"
mkdir -p "$OUT"
[ -z "$DEVICE" ] || nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
for style in wikipedia facebook; do
    train_style="$style"; read_as=()
    [ "$style" != wikipedia ] || { train_style=wikipedia_letters; read_as=(--prior wikipedia); }
    .venv/bin/synthstream train --style "$train_style" --preset "${PRESET:-cpu-columns}" $DEVICE \
        --batch-size "${BATCH:-256}" --generators "${GENERATORS:-4}" --generator-cpus 1 --steps 1000000 \
        --max-minutes "${MINUTES:-3.3}" --val-every 500 --no-progress --out "$RUNS/$style"
    .venv/bin/synthstream export --checkpoint "$RUNS/$style" --out "$OUT/$style.pt"
    if [ -d "$REAL/$style" ]; then
        .venv/bin/synthstream eval --data "$REAL/$style" --checkpoint "$OUT/$style.pt" --method beam "${read_as[@]}" \
            --shifts "${SHIFTS:-9}" --calibrate "${CALIBRATE:-100}" --out "$RUNS/eval_$style"
        cp "$RUNS/eval_$style/report.json" "$OUT/eval_$style.json"
    fi
done
.venv/bin/python - "$RUNS" "$OUT/gpu_train.json" <<'PY'
import json, sys
from pathlib import Path
import torch
runs, out = Path(sys.argv[1]), Path(sys.argv[2])
result = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", "runs": {}}
for style in ("wikipedia", "facebook"):
    report = json.loads((runs / style / "report.json").read_text())
    result["runs"][style] = {"steps": report["final"].get("step"), "wall_s": report["wall_s"],
                             "images_per_s": report["final"].get("images_per_s"),
                             "data_wait_share": report["final"].get("data_wait_share"),
                             "val_string_accuracy": report["final"].get("val/string_accuracy"),
                             "config": report["config"]}
out.write_text(json.dumps(result, indent=2))
print(json.dumps(result, indent=2))
PY
