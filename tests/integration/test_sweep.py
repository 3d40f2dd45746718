"""mlpscale-sweep: spec checks, grid names, commands, local and submitit launchers, re-runs, reuse of kept
epochs (exact), interruption, and the whole mini-study through mlpscale-scaling (slow). Everything is
written under tmp_path; the digits betons come from conftest's `digits_root`."""
import csv
import itertools
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from mlpscale import sweep as sw

from util import ROOT, TinyConfig, probe_measure, run_main, write_spec

MINI = os.path.join(ROOT, "configs", "sweeps", "mini_cpu.yaml")
# the sweeps' runs: tiny_config on 200 of the digits, evaluated every 5 epochs
SWEEP = ("data.n_train=200", "train.eval_every=5")


def read_json(path):
    with open(path) as f:
        return json.load(f)


def read_text(path):
    with open(path) as f:
        return f.read()


def results(sweep_dir):
    with open(os.path.join(sweep_dir, "results.csv")) as f:
        return {r["name"]: r for r in csv.DictReader(f)}


def run_sweep(capsys, *argv):
    return run_main(sw.main, capsys, *argv)


def files_with_mtimes(folder):
    return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
            for d, _, fs in os.walk(folder) for f in fs if f != ".lock"}


# --- spec and grid (no training) ---------------------------------------------------------------------















# --- local sweeps on the digits ------------------------------------------------------------------

@pytest.fixture(scope="module")
def reuse_pair(digits_root, tmp_path_factory):
    """One tiny sweep with T in {1, 2} trained once (reuse) and the same with each T trained separately."""
    tmp = tmp_path_factory.mktemp("reuse")
    grid = {"model.arch": ["B_1-Wi_16"], "train.epochs": [1, 2]}
    out = {}
    for mode in ("auto", "off"):
        spec = write_spec(tmp / f"{mode}.yaml", set=TinyConfig(digits_root, tmp).spec_set(*SWEEP), grid=grid,
                          measure=probe_measure(digits_root),
                          reuse_epochs=mode)
        r = subprocess.run([sys.executable, "-m", "mlpscale.sweep", spec, "--out", str(tmp / mode)],
                           check=False, capture_output=True, text=True, cwd=tmp, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        out[mode] = (str(tmp / mode), r.stdout)
    return out


def test_local_sweep_writes_results_csv(reuse_pair):
    d, log = reuse_pair["auto"]
    rows = results(d)
    assert list(rows) == ["B_1-Wi_16__e1", "B_1-Wi_16__e2"]
    with open(os.path.join(d, "results.csv")) as f:
        header = f.readline().strip().split(",")
    assert header[:6] == ["arch", "params", "n_train", "epochs", "compute_pflops", "error"]
    assert {"name", "test_top1", "probe_top1", "status", "run_dir", "probe_dir"} <= set(header)
    summary = read_json(os.path.join(d, "points", "B_1-Wi_16", "summary.json"))
    for t, r in zip((1, 2), rows.values()):
        assert r["status"] == "finished" and r["arch"] == "B_1-Wi_16" and int(r["n_train"]) == 200
        assert int(r["epochs"]) == t and int(r["params"]) == summary["params"]
        assert float(r["compute_pflops"]) == pytest.approx(summary["paper_flops_per_forward"] * 3 * 200 * t / 1e15)
        assert float(r["error"]) == pytest.approx(1 - float(r["probe_top1"]) / 100)
        assert r["run_dir"] == "points/B_1-Wi_16" and r["probe_dir"] == f"probes/B_1-Wi_16__e{t}"
        probe_summary = read_json(os.path.join(d, r["probe_dir"], "summary.json"))
        assert probe_summary["finetune_from"].endswith(f"points/B_1-Wi_16/epoch_{t}.pt")
        assert probe_summary["mode"] == "linear"
    rows_m = [json.loads(x) for x in read_text(os.path.join(d, "points", "B_1-Wi_16", "metrics.jsonl")).splitlines()]
    assert float(rows["B_1-Wi_16__e1"]["test_top1"]) == rows_m[0]["test_top1"]   # the run's own top-1 at T=1
    assert summary["epochs_done"] == 2 and log.count("train B_1-Wi_16") == 1  # one run serves both Ts
    spec = yaml.safe_load(read_text(os.path.join(d, "spec.yaml")))
    assert spec["units"][0]["reuse"] and [p["name"] for p in spec["points"]] == list(rows)


def test_reused_checkpoint_is_exactly_a_shorter_run(reuse_pair):
    """Constant lr (with a warmup counted in epochs): epoch_1.pt of the 2-epoch run holds the weights of a
    separate 1-epoch run, bit for bit, and the probes agree exactly."""
    (a, _), (b, log_b) = reuse_pair["auto"], reuse_pair["off"]
    kept = torch.load(os.path.join(a, "points", "B_1-Wi_16", "epoch_1.pt"), weights_only=True)["model"]
    alone = torch.load(os.path.join(b, "points", "B_1-Wi_16__e1", "last.pt"), weights_only=True)["model"]
    assert kept.keys() == alone.keys() and all(torch.equal(kept[k], alone[k]) for k in kept)
    ra, rb = results(a), results(b)
    assert log_b.count("train B_1-Wi_16__e") == 2                # here each T trained on its own
    for name in ra:
        assert ra[name]["probe_top1"] == rb[name]["probe_top1"] and ra[name]["test_top1"] == rb[name]["test_top1"]
        assert ra[name]["compute_pflops"] == rb[name]["compute_pflops"]


def test_rerun_skips_finished_and_redoes_only_what_was_deleted(tiny_config, digits_root, tmp_path, capsys):
    spec = write_spec(tmp_path / "s.yaml", set=tiny_config.spec_set(*SWEEP), measure=probe_measure(digits_root),
                      grid={"model.arch": ["B_1-Wi_16", "B_1-Wi_32"], "train.epochs": [1]})
    out = str(tmp_path / "sweep")
    code, log, err = run_sweep(capsys, spec, "--out", out)
    assert code == 0, err
    assert log.count("train ") == 2 and log.count("probe ") == 2 and "2 points (2 finished)" in log
    before = files_with_mtimes(out)

    code, log, _ = run_sweep(capsys, spec, "--out", out)        # nothing to do
    assert code == 0 and "train " not in log and "probe " not in log and "2 finished" in log

    import shutil
    shutil.rmtree(os.path.join(out, "probes", "B_1-Wi_32__e1"))     # one point's result
    code, log, _ = run_sweep(capsys, spec, "--out", out)
    assert code == 0 and "train " not in log and log.count("probe ") == 1 and "probe B_1-Wi_32__e1" in log
    after = files_with_mtimes(out)
    changed = {p for p in after if before.get(p) != after[p]}
    assert changed and all("/probes/B_1-Wi_32__e1/" in p or "/state/" in p
                           or p.endswith(("results.csv", "spec.yaml", "probe.yaml")) for p in changed), changed

    shutil.rmtree(os.path.join(out, "points", "B_1-Wi_16__e1"))     # one point's training: it and its probe again
    code, log, _ = run_sweep(capsys, spec, "--out", out)
    assert code == 0 and log.count("train ") == 1 and "train B_1-Wi_16__e1 (new" in log
    assert log.count("probe ") == 1 and "probe B_1-Wi_16__e1 (again" in log
    assert all(r["status"] == "finished" for r in results(out).values())


def test_changed_spec_refuses_to_continue_a_folder(tiny_config, tmp_path, capsys):
    grid = {"model.arch": ["B_1-Wi_16"], "train.epochs": [1]}
    spec = write_spec(tmp_path / "s.yaml", set=tiny_config.spec_set(*SWEEP), grid=grid)
    assert run_sweep(capsys, spec, "--out", str(tmp_path / "o"))[0] == 0
    spec = write_spec(tmp_path / "s.yaml", set={**tiny_config.spec_set(*SWEEP), "optim.lr": 2.0e-3}, grid=grid)
    code, _, err = run_sweep(capsys, spec, "--out", str(tmp_path / "o"))
    assert code == 2 and "was trained with another configuration (optim.lr: 0.001 there, 0.002 in the spec)" in err


def test_interrupted_sweep_resumes_from_last_pt(tiny_config, tmp_path):
    """SIGINT once the run has saved a last.pt (a state, not a time): the sweep passes it on, the run saves
    and the sweep exits 130; the same command then continues the run with --resume."""
    spec = write_spec(tmp_path / "s.yaml", set={**tiny_config.spec_set(*SWEEP), "train.eval_every": 100,
                                                "data.n_train": 64}, grid={"model.arch": ["B_1-Wi_16"],
                                                                           "train.epochs": [150]})
    cmd = [sys.executable, "-m", "mlpscale.sweep", spec, "--out", str(tmp_path / "o")]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    run_dir = tmp_path / "o" / "points" / "B_1-Wi_16__e150"
    while p.poll() is None and not (run_dir / "last.pt").exists():
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 130, out + err
    assert "stopping (SIGINT)" in out and "interrupted B_1-Wi_16__e150" in out
    s = read_json(run_dir / "summary.json")
    assert s["status"] == "interrupted" and s["epochs_done"] < 150
    assert results(tmp_path / "o")["B_1-Wi_16__e150"]["status"] == "interrupted"

    r = subprocess.run(cmd + ["--print-commands"], check=False, capture_output=True, text=True, cwd=tmp_path)
    assert f"mlpscale-train --resume {run_dir}" in r.stdout
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "resumed from last.pt" in r.stdout
    rows = [json.loads(x) for x in read_text(run_dir / "metrics.jsonl").splitlines()]
    assert [x["epoch"] for x in rows] == list(range(1, 151))
    assert results(tmp_path / "o")["B_1-Wi_16__e150"]["status"] == "finished"


def test_failed_point_is_reported_and_retried(tiny_config, tmp_path, capsys):
    spec = write_spec(tmp_path / "s.yaml", set={**tiny_config.spec_set(*SWEEP), "data.n_train": 5000},  # > 1437 images
                      grid={"model.arch": ["B_1-Wi_16"], "train.epochs": [1]})
    code, out, err = run_sweep(capsys, spec, "--out", str(tmp_path / "o"))
    assert code == 1 and "failed B_1-Wi_16__e1" in out and "sweep.log" in out and "did not finish" in err
    assert results(tmp_path / "o")["B_1-Wi_16__e1"]["status"] == "failed"
    assert "n_train=5000" in read_text(tmp_path / "o" / "points" / "B_1-Wi_16__e1" / "sweep.log")
    code, out, err = run_sweep(capsys, spec, "--out", str(tmp_path / "o"))
    assert code == 1 and out.count("train B_1-Wi_16__e1 (new") == 1          # tried again


def test_a_failed_probe_does_not_stop_the_other_epochs(tiny_config, digits_root, tmp_path, capsys):
    bad = probe_measure(digits_root)
    bad["probe"]["set"]["data.dataset"] = "no_such_dataset"
    spec = write_spec(tmp_path / "s.yaml", set=tiny_config.spec_set(*SWEEP), measure=bad,
                      grid={"model.arch": ["B_1-Wi_16"], "train.epochs": [1, 2]})
    code, out, err = run_sweep(capsys, spec, "--out", str(tmp_path / "o"))
    assert code == 1 and out.count("failed probe") == 2 and "did not finish" in err   # both Ts were tried
    rows = results(tmp_path / "o")
    assert [r["status"] for r in rows.values()] == ["failed", "failed"] and all(r["test_top1"] for r in rows.values())
    assert "unknown dataset 'no_such_dataset'" in read_text(tmp_path / "o" / "probes" / "B_1-Wi_16__e1" / "sweep.log")


def test_submitit_local_executor_runs_a_two_point_sweep(tiny_config, tmp_path, capsys):
    pytest.importorskip("submitit")
    spec = write_spec(tmp_path / "s.yaml", set=tiny_config.spec_set(*SWEEP), measure="test",
                      grid={"model.arch": ["B_1-Wi_16", "B_1-Wi_32"], "train.epochs": [1]})
    code, out, err = run_sweep(capsys, spec, "--out", str(tmp_path / "o"), "--launcher", "submitit-local")
    assert code == 0, out + err
    assert "submitted 2 job(s) to local" in out
    rows = results(tmp_path / "o")
    assert set(rows) == {"B_1-Wi_16__e1", "B_1-Wi_32__e1"}
    for r in rows.values():
        assert r["status"] == "finished" and r["probe_top1"] == "" and r["probe_dir"] == ""
        assert float(r["error"]) == pytest.approx(1 - float(r["test_top1"]) / 100)
    assert len(json.loads(read_text(tmp_path / "o" / "submitit" / "jobs.jsonl").splitlines()[0])["jobs"]) == 2


def test_preempted_submitit_job_checkpoints_and_the_requeued_job_resumes(tiny_config, tmp_path):
    """What submitit does on preemption or timeout, driven by states: the job's checkpoint() stops the running
    training (SIGTERM: it saves last.pt), and the pickled resubmission continues it with --resume."""
    submitit = pytest.importorskip("submitit")
    import pickle
    import threading

    spec = write_spec(tmp_path / "s.yaml",
                      set={**tiny_config.spec_set(*SWEEP), "train.eval_every": 100, "data.n_train": 64},
                      grid={"model.arch": ["B_1-Wi_16"], "train.epochs": [150]})
    s = sw.plan(sw.read_spec(spec), str(tmp_path / "o"))
    sw.write_support_files(s)
    job, name = sw.UnitJob(s), s.units[0].name
    outcome = []
    t = threading.Thread(target=lambda: outcome.append(job(name)))
    t.start()
    run_dir = tmp_path / "o" / "points" / name
    while t.is_alive() and not (run_dir / "last.pt").exists():
        time.sleep(0.05)
    delayed = job.checkpoint(name)
    t.join(timeout=300)
    assert outcome == ["interrupted"]
    assert read_json(run_dir / "summary.json")["status"] == "interrupted"
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    requeued = pickle.loads(pickle.dumps(delayed))              # what submitit stores for the next job
    assert requeued.function(*requeued.args) == "finished"
    # one line per command run
    starts = [ln for ln in read_text(run_dir / "sweep.log").splitlines() if ln.startswith("== ")]
    assert len(starts) == 2 and "mlpscale-train --config" in starts[0]
    assert f"mlpscale-train --resume {run_dir}" in starts[1]
    assert read_json(run_dir / "summary.json")["epochs_done"] == 150
    assert results(tmp_path / "o")[name]["status"] == "finished"


def test_prepare_steps_run_once(tmp_path, capsys):
    target = tmp_path / "made.txt"
    spec = write_spec(tmp_path / "s.yaml", grid={"model.arch": ["B_1-Wi_16"]}, prepare=[
        {"run": f"python -c \"open('{target}', 'a').write('x')\"", "creates": str(target)},
        {"python": "data_prep.sources.digits:export_folders", "args": {"out": str(tmp_path / "pairs"),
                                                            "labels": {0: "a", 1: "a", 7: "b"}},
         "creates": str(tmp_path / "pairs")}])
    for _ in range(2):
        code, out, err = run_sweep(capsys, spec, "--out", str(tmp_path / "o"), "--prepare", "--dry-run")
        assert code == 0, err
    assert target.read_text() == "x" and "skip" in out
    classes = sorted(os.listdir(tmp_path / "pairs" / "train"))
    assert classes == ["a", "b"] and len(os.listdir(tmp_path / "pairs" / "test" / "a")) > 50


# --- the mini-study end to end ------------------------------------------------------------------------

# the smallest grid of configs/sweeps/mini_cpu.yaml whose frontier still holds 5+ points over a wide compute range
# (the fit needs 5, the allocation 3 at the smallest T); the whole study is `make study`
SMALL_GRID = {"model.arch": ["B_1-Wi_16", "B_2-Wi_32", "B_2-Wi_64"], "data.n_train": [200, 1437],
              "train.epochs": [2, 4, 8]}


def test_mini_study(tmp_path):
    """configs/sweeps/mini_cpu.yaml on a smaller grid: data preparation, 6 runs, 18 probes, then mlpscale-scaling."""
    with open(MINI) as f:
        spec = yaml.safe_load(f)
    spec["grid"] = SMALL_GRID
    (tmp_path / "mini.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "mlpscale.sweep", "mini.yaml", "--prepare", "--out", str(tmp_path / "sweep")]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=tmp_path, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # reported, not asserted: speed is a measured figure (the whole study's: README and make study)
    print(f"mini-study (small grid): {time.monotonic() - t0:.0f} s end to end")
    rows = results(tmp_path / "sweep")
    assert len(rows) == 18 and all(x["status"] == "finished" for x in rows.values())
    r = subprocess.run([sys.executable, "-m", "mlpscale.scaling", str(tmp_path / "sweep"), "--out",
                        str(tmp_path / "scaling")], check=False, capture_output=True, text=True, cwd=tmp_path,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    for f in ("points.csv", "scaling.json", "error_vs_compute.png", "compute_optimal_allocation.png"):
        assert (tmp_path / "scaling" / f).stat().st_size > 0
    s = read_json(tmp_path / "scaling" / "scaling.json")
    fr = s["frontier"]
    assert len(fr) >= 5
    assert all(a["compute_pflops"] < b["compute_pflops"] and a["error"] > b["error"]
               for a, b in itertools.pairwise(fr))
    assert fr[0]["error"] - fr[-1]["error"] > 0.1               # more compute buys a visibly lower error
