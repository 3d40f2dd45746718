"""The benchmark suites run as CI runs them (--quick, toy sizes): step, loader, eval and tiered measure in this process;
e2e runs each recipe in its own process; startup times the user's command."""
import json
import os

import pytest

from benchmarks.cli import main
from benchmarks.schema import validate, validate_entry

from util import BENCH_TINY as TINY
from util import BENCH_TINY_E2E as TINY_E2E

pytestmark = pytest.mark.usefixtures("tmpdir_under_tmp_path")


def test_cli_e2e_runs_each_recipe_in_its_own_process_and_fails_in_one_line_below_the_minimum(tmp_path, capsys,
                                                                                              monkeypatch):
    """One e2e run as CI runs it (--quick: minimum pipeline efficiency 0.7) with a slow data path injected in
    ours' e2e process (5x the step's time idle after every step): each variant ran in its own process, the
    results file holds the figure, and the run fails with one clear line. Ours only (--no-e2e-baseline):
    the authors' recipe and the passing run are CI's own `python -m benchmarks all --quick` and the GPU
    check's toy test."""
    # one torch thread per worker: at toy sizes on a busy 2-core machine two OpenMP threads make a tiny
    # step wait for a descheduled core (100x swings), which would drown the injected stall
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "e2e.json"
    with pytest.raises(SystemExit) as exc:
        main(["e2e", "--quick", "--json", str(out), "--root", str(tmp_path / "data"), "--inject", "stall=5",
              "--no-e2e-baseline"] + TINY_E2E + ["--reps", "1"])
    assert exc.value.code == 3
    text, err = capsys.readouterr()
    err = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "pipeline efficiency of ours" in err[0] and "< 0.70" in err[0]
    assert "pipeline efficiency (end to end / bare step): ours" in text
    doc = json.loads(out.read_text())
    validate(doc)
    (e,) = doc["results"]
    assert e["suite"] == "e2e" and 0 < e["pipeline_efficiency"]["ours"] < 0.7
    procs = e["processes"]
    pids = {p["pid"] for runs in procs.values() for p in runs}
    assert os.getpid() not in pids and len(pids) == sum(len(r) for r in procs.values())  # one process each
    assert all(p["torch_threads"] >= 1 for runs in procs.values() for p in runs)
    assert set(procs) == {"mlpscale", "mlpscale_bare"}  # the authors' recipe not requested: none of its processes
    assert e["variants"]["reference"]["skipped"].startswith("not requested")
    # ours end to end is mlpscale-train's own run (train.run), bare is Trainer.step
    assert "train.run" in e["variants"]["mlpscale"]["what"] and "Trainer.step" in e["variants"]["mlpscale_bare"]["what"]


def test_startup_suite_times_the_users_command():
    from benchmarks.startup import suite_startup

    (e,) = suite_startup(1, log=None)
    validate_entry(e)
    assert e["suite"] == "startup" and e["unit"] == "s" and len(e["values"]) == 1
    assert 0 < e["value"] <= e["command_wall_s"][0] + 1.0   # the first step comes before the command ends


def test_cli_step_prints_ours_baseline_ratio_and_valid_json(tmp_path, capsys):
    out = tmp_path / "step.json"
    main(["step", "--quick", "--json", str(out)] + TINY)
    text = capsys.readouterr().out
    assert "ours mlpscale" in text and "base reference" in text and "ratio mlpscale / reference" in text
    doc = json.loads(out.read_text())
    validate(doc)
    (e,) = doc["results"]
    assert e["suite"] == "step" and e["ours"] == "mlpscale" and e["ratios"]["reference"] > 0
    assert e["config"]["precision"] == "fp32"  # auto: bf16 autocast is ~12x slower on CPUs without bf16 units


def test_cli_loader_prints_ours_baselines_and_ratio(tmp_path, capsys):
    pytest.importorskip("ffcv")
    out = tmp_path / "loader.json"
    main(["loader", "--quick", "--json", str(out), "--formats", "raw", "--threads", "1"] + TINY)
    text = capsys.readouterr().out
    assert "ours mlpscale_stream" in text and "ratio mlpscale_stream / reference_ffcv" in text
    assert "ratio mlpscale_stream / torch_dataloader" in text
    doc = json.loads(out.read_text())
    validate(doc)
    assert {e["config"]["format"] for e in doc["results"]} == {"raw"}


def test_cli_eval_uses_the_evaluate_module(tmp_path, monkeypatch):
    import mlpscale.evaluate as ev

    calls = []
    real = ev._tta_logits

    def counted(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(ev, "_tta_logits", counted)
    out = tmp_path / "eval.json"
    main(["eval", "--quick", "--json", str(out), "--tta-crops", "2", "--root", str(tmp_path / "data")] + TINY
         + ["--reps", "1"])
    doc = json.loads(out.read_text())
    validate(doc)
    (e,) = doc["results"]
    assert calls, "the eval suite must time mlpscale.evaluate's TTA"
    assert e["variants"]["bare_forward"]["role"] == "info" and e["pipeline_efficiency"]["ours"] > 0
    assert e["config"]["views"] == 2
    from benchmarks import common, tta

    assert not hasattr(common, "tta_probs") and not hasattr(tta, "tta_probs")  # one implementation


def test_cli_tiered_decodes_once_into_two_tiers(tmp_path, capsys):
    out = tmp_path / "tiered.json"
    main(["tiered", "--quick", "--json", str(out), "--tiered-n", "256", "--tiered-res", "16",
          "--root", str(tmp_path / "data")] + TINY + ["--reps", "1"])
    doc = json.loads(out.read_text())
    validate(doc)
    (e,) = doc["results"]
    assert e["config"]["device_rows"] == 128 and e["config"]["host_rows"] == 128  # rows straddle both tiers
    assert e["decode"]["img_per_s"] > 0 and e["decode"]["host_bytes"] == 128 * 16 * 16 * 3
    assert set(e["epoch_s"]) >= {"mlpscale", "mlpscale_one_tier"}
    assert "one-time decode" in capsys.readouterr().out
