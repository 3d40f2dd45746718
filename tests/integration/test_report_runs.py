"""mlpscale-report and the table sweep specs as processes: a digits table sweep then its report, three seeds per
row, bad input."""
import json
import os
import subprocess
import sys

import yaml

from util import ROOT, run_cli

SPEC = os.path.join(ROOT, "configs", "sweeps", "table1_digits.yaml")


def test_not_a_sweep_folder_is_one_sentence(tmp_path):
    r = run_cli("mlpscale-report", str(tmp_path))
    assert r.returncode == 2 and "holds no results.csv" in r.stderr and "Traceback" not in r.stderr



def test_digits_table_sweep_then_report(tmp_path):
    """configs/sweeps/table1_digits.yaml end to end, plus one point made to fail (more images than the digits
    have): report.md holds mean ± std over 3 seeds per cell, the failed run as failed, and the claim block."""
    with open(SPEC) as f:
        spec = yaml.safe_load(f)
    spec["grid"].append({"model.arch": ["B_2-Wi_64"], "aug.enabled": [True], "aug.mixup": [0.2],
                         "data.n_train": [5000], "train.seed": [3], "train.epochs": [3]})
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    r = subprocess.run([sys.executable, "-m", "mlpscale.sweep", str(path), "--prepare", "--out", "sw"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert r.returncode == 1 and "failed B_2-Wi_64__n5000__seed3__e3" in r.stdout, r.stdout + r.stderr
    r = run_cli("mlpscale-report", "sw", "--out", "rep", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "rep" / "report.md").read_text()
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["rows"] == ["S_2-Wi_64 (@3 E)", "B_2-Wi_64 + DA (@3 E)"] and rep["columns"] == ["digits"]
    s, b = rep["cells"]["S_2-Wi_64 (@3 E)"]["digits"], rep["cells"]["B_2-Wi_64 + DA (@3 E)"]["digits"]
    assert s["n"] == 3 and b["n"] == 3 and b["not_finished"] == {"failed": ["B_2-Wi_64__n5000__seed3__e3"]}
    assert len(set(s["values"])) > 1 and 50 < s["mean"] < 100       # three seeds, three results
    assert f"| B_2-Wi_64 + DA (@3 E) | {b['mean']:.2f} ± {b['std']:.2f} (n=3, 1 failed) |" in md
    assert "## Claim" in md and "hardware:  1 x cpu" in md and "commit:" in md and "torch" in md
    assert f"mlpscale-sweep {path} --out {tmp_path / 'sw'}" in md
