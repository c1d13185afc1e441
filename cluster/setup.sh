#!/usr/bin/env bash
# Prepare this machine for synthstream: system fonts, a virtual environment in .venv, and every Python
# dependency. Safe to run again (it installs only what is missing).
#   SYNTHSTREAM_TORCH  pip spec for torch (default: torch==2.13.0 without CUDA, plain torch with a GPU)
#   PYTHON             interpreter for the venv (default: python3)
# Ray is pinned exactly here (pyproject.toml gives a range): every node of a cluster must run the same Ray,
# the one deploy/Dockerfile's base image holds.
set -euo pipefail
cd "$(dirname "$0")/.."
RAY_PIN="ray[default,train,tune,serve]==2.60.0"

DEBIAN_PACKAGES="$(sed -e 's/#.*//' cluster/debian-packages.txt | xargs)"   # the one list (also read by deploy/Dockerfile)
if command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1; then
    missing=""
    for p in $DEBIAN_PACKAGES; do
        dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        echo "setup: installing Debian packages:$missing"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
else
    echo "setup: no apt-get here; install the packages of cluster/debian-packages.txt (fonts FreeMono/FreeSans, URW base35," \
         "Noto Sans, DejaVu, Courier Prime; the wamerican word list), or point SYNTHSTREAM_FONT_PATH and SYNTHSTREAM_WORDS_PATH at folders holding them" >&2
fi

PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if [ -z "${SYNTHSTREAM_TORCH:-}" ]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        SYNTHSTREAM_TORCH="torch"            # a CUDA build
    else
        SYNTHSTREAM_TORCH="torch==2.13.0"    # CPU: never let an unpinned torch pull the multi-GB CUDA build
    fi
fi
echo "setup: pip install $SYNTHSTREAM_TORCH, $RAY_PIN and synthstream[test] into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check "$SYNTHSTREAM_TORCH" "$RAY_PIN" -e ".[test]" 2>&1 \
    | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import synthstream, torch, ray, numba, pyarrow" \
    || { echo "setup: the Python install failed (see pip's output above)" >&2; exit 1; }
echo "setup: compiling the render kernels into Numba's cache (once: ~40 s on 2 cores; seconds when cached)"
timeout 900 .venv/bin/python -c "import sys
from synthstream.errors import UserError
from synthstream.generate import compile_kernels
try:
    compile_kernels()
except UserError as e:
    sys.exit(f'setup: {e}')" \
    || echo "setup: could not compile the render kernels now (see above); the first run compiles them" >&2
