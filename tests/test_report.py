"""mlpscale-report: seeds -> mean ± std beside the paper's tables, failures shown as such, the claim block."""
import csv
import json
import os
import subprocess
import sys

import pytest
import yaml

from mlpscale import report
from mlpscale.paper_tables import TABLE1, TABLE2, TABLES
from util import ROOT, run_cli

SPEC = os.path.join(ROOT, "configs", "sweeps", "table1_digits.yaml")


def fake_sweep(d, rows, spec=None):
    """A sweep folder as mlpscale-sweep leaves it: results.csv (+ spec.yaml), no run folders."""
    os.makedirs(d, exist_ok=True)
    cols = sorted({k for r in rows for k in r})
    with open(os.path.join(d, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    with open(os.path.join(d, "spec.yaml"), "w") as f:
        yaml.safe_dump(spec or {}, f)
    return str(d)


def row(name, arch, epochs, status, top1="", aug="true", dataset="cifar10", seed=0, **kw):
    return {"name": name, "arch": arch, "epochs": epochs, "status": status, "test_top1": top1, "aug.enabled": aug,
            "data.dataset": dataset, "train.seed": seed, "run_dir": f"points/{name}", **kw}


def test_tables_hold_the_papers_numbers():
    assert TABLE1.rows[5].values["cifar10"] == (75.4, None) and TABLE1.rows[6].values["imagenet1k"] == (69.7, None)
    assert TABLE2.rows[3].values["real"] == (57.9, 0.1) and TABLES["readme"].rows[0].values["cifar100"][0] == 71.2
    assert all(len(r.values) == len(t.columns) for t in TABLES.values() for r in t.rows)


def test_cells_average_seeds_and_compare_with_the_paper(tmp_path):
    d = fake_sweep(tmp_path / "s", [
        row("b0", "B_6-Wi_1024", 1000, "finished", 69.5, seed=0),
        row("b1", "B_6-Wi_1024", 1000, "finished", 70.0, seed=1),
        row("b2", "B_6-Wi_1024", 1000, "finished", 70.6, seed=2),
        row("s0", "S_6-Wi_1024", 100, "finished", 50.0, aug="false", seed=0),
        row("s1", "S_6-Wi_1024", 100, "finished", 50.2, aug="false", seed=1),
        row("s2", "S_6-Wi_1024", 100, "failed", aug="false", seed=2),
        row("r0", "resnet18", 200, "pending"),
    ])
    rep = report.build_report(d, TABLE1)
    assert rep["rows"] == ["S-MLP (@100 E)", "B-MLP + DA (@1000 E)", "ResNet18 + DA"]
    b = rep["cells"]["B-MLP + DA (@1000 E)"]["cifar10"]
    assert b["n"] == 3 and b["mean"] == pytest.approx(70.0333, abs=1e-3) and b["std"] == pytest.approx(0.5508, abs=1e-3)
    assert b["cited"] == 70.1 and b["diff"] == pytest.approx(-0.0667, abs=1e-3) and b["within"] is True
    s = rep["cells"]["S-MLP (@100 E)"]["cifar10"]
    assert s["n"] == 2 and s["values"] == [50.0, 50.2] and s["not_finished"] == {"failed": ["s2"]}
    assert s["within"] is False                              # 54.2 is far outside 50.1 ± 2 x 0.14
    r = rep["cells"]["ResNet18 + DA"]["cifar10"]
    assert r["n"] == 0 and "mean" not in r and r["not_finished"] == {"pending": ["r0"]}
    md = report.to_markdown(rep)
    assert "| ResNet18 + DA | 1 pending |" in md                      # a missing run is never a number
    assert "50.10 ± 0.14 (n=2, 1 failed) vs 54.2: -4.10, outside" in md
    assert "70.03 ± 0.55 (n=3) vs 70.1: -0.07, within" in md


def test_fine_tuning_sweeps_read_the_probe_tta_and_real(tmp_path):
    d = tmp_path / "s"
    rows = []
    for seed, (top1, tta, real) in enumerate([(43.0, 51.0, 48.0), (43.6, 51.8, 48.4)]):
        name = f"B_12-Wi_1024__augtrue__seed{seed}"
        os.makedirs(d / "probes" / name)
        with open(d / "probes" / name / "summary.json", "w") as f:
            json.dump({"test_top1": top1, "tta_top1": tta, "real_top1": real, "elapsed_s": 3600.0,
                       "device": "NVIDIA H100", "world_size": 1,
                       "versions": {"torch": "2.x", "cuda": "12", "ffcv": "1.0.2"}}, f)
        rows.append(row(name, "B_12-Wi_1024", 800, "finished", "", seed=seed, probe_top1=top1,
                        probe_dir=f"probes/{name}", **{"data.dataset": "imagenet21k"}))
    spec = {"measure": {"probe": {"set": ["data.dataset=imagenet1k"], "mode": "full"}}}
    rep = report.build_report(fake_sweep(d, rows, spec), TABLE2)
    assert rep["columns"] == ["imagenet1k", "real"]
    assert rep["cells"]["B-12/Wi-1024 + DA"]["imagenet1k"]["mean"] == pytest.approx(43.3)
    assert rep["cells"]["B-12/Wi-1024 + DA + TTA"]["imagenet1k"]["mean"] == pytest.approx(51.4)
    assert rep["cells"]["B-12/Wi-1024 + DA"]["real"]["cited"] == 48.6
    cl = rep["claim"]
    assert cl["hardware"] == [{"device": "NVIDIA H100", "count": 1}] and cl["gpu_hours"] == pytest.approx(2.0)
    assert cl["versions"] == [{"torch": "2.x", "cuda": "12", "ffcv": "1.0.2"}]


def test_not_a_sweep_folder_is_one_sentence(tmp_path):
    r = run_cli("mlpscale-report", str(tmp_path))
    assert r.returncode == 2 and "holds no results.csv" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow  # 7 short training processes
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


@pytest.mark.slow  # one process per spec
def test_table_specs_plan_three_seeds_per_row(tmp_path):
    """Every configs/sweeps/table<1|2>_<dataset>.yaml is a valid sweep whose rows each train 3 seeds."""
    import glob

    specs = sorted(glob.glob(os.path.join(ROOT, "configs", "sweeps", "table[12]_*.yaml")))
    names = {os.path.basename(s) for s in specs}
    assert {f"table1_{d}.yaml" for d in TABLE1.columns} <= names
    assert {f"table2_{d}.yaml" for d in TABLE2.columns if d != "real"} <= names
    for spec in specs:
        r = run_cli("mlpscale-sweep", spec, "--dry-run", "--out", str(tmp_path / os.path.basename(spec)), cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        lines = [ln for ln in r.stdout.splitlines() if "seed" in ln]
        for seed in (0, 1, 2):
            assert sum(f"seed{seed}" in ln for ln in lines) == len(lines) // 3, (spec, r.stdout)
