"""A conversion, run as a user runs it in a fresh interpreter, never imports FFCV."""
from __future__ import annotations

import subprocess
import sys

from util import ROOT


def test_a_conversion_never_imports_ffcv(tmp_path):
    """`import ffcv` costs ~4 s and compiles numba code: the converter reads and writes betons itself."""
    code = ("import sys; from data_prep.cli import main\n"
            "try:\n    main(sys.argv[1:])\nfinally:\n"
            "    print('FFCV' if any(m == 'ffcv' or m.startswith('ffcv.') for m in sys.modules) else 'NO FFCV')\n")
    out = str(tmp_path / "out")
    for argv in (["digits", "--res", "8", "--root", out, "--quiet", "--shard", "0/2"],
                 ["digits", "--res", "8", "--root", out, "--quiet", "--shard", "1/2"],
                 ["combine", "--dataset", "digits", "--res", "8", "--root", out, "--quiet"],
                 ["subset", "--dataset", "digits", "--res", "8", "--root", out, "--n", "50", "--beton", "--quiet"]):
        r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip().endswith("NO FFCV"), (argv, r.stdout)
