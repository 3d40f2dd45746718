"""The developer benchmarks (python -m benchmarks): the timing harness, the reference recipe's pieces, the results schema and the CLI."""
import copy
import json
import os
import tempfile

import pytest
import torch

from benchmarks import reference as ref
from benchmarks.cli import main
from benchmarks.schema import SchemaError, validate, validate_entry
from benchmarks.timing import Comparison, Variant, compare, summarize

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--arch", "B_1-Wi_32", "--res", "8", "--batch", "32", "--classes", "10", "--n-train", "256",
        "--steps", "1", "--batches", "2", "--reps", "2", "--warmup", "1"]
# e2e at toy sizes: every variant is a separate process (a few seconds each, FFCV's compile in the reference's)
TINY_E2E = TINY + ["--e2e-arch", "B_1-Wi_32", "--e2e-steps", "2", "--e2e-warmup", "1", "--e2e-reps", "1"]


@pytest.fixture(autouse=True)
def _temp_under_tmp_path(tmp_path, monkeypatch):
    """Temporary folders (run folders, generated betons, the worker processes' files) under tmp_path."""
    d = tmp_path / "tmp"
    d.mkdir()
    monkeypatch.setenv("TMPDIR", str(d))
    monkeypatch.setattr(tempfile, "tempdir", str(d))


def test_compare_alternates_and_reports_ratio():
    calls = []

    def make(name, items):
        def fn():
            calls.append(name)
            return items
        return fn

    cmp = Comparison("t", "toy", "items/s", "one call", {}, [Variant("a", make("a", 100), "ours"),
                                                             Variant("b", make("b", 10), "baseline"),
                                                             Variant("c", make("c", 1), "baseline", skipped="no lib")],
                     reps=4, warmup=1)
    lines = []
    d = compare(cmp, log=lines.append).to_json()
    assert calls[:2] == ["a", "b"] and calls[2:] == ["a", "b", "b", "a", "a", "b", "b", "a"]  # order rotates
    assert d["variants"]["c"]["skipped"] == "no lib" and "c" not in d["ratios"]
    assert d["ratios"]["b"] == pytest.approx(d["variants"]["a"]["median"] / d["variants"]["b"]["median"])
    assert "ratio a / b" in lines[0] and "skipped: no lib" in lines[0]


def test_summarize_spread():
    s = summarize([4.0, 1.0, 3.0, 2.0])
    assert (s["median"], s["min"], s["max"], s["iqr"]) == (2.5, 1.0, 4.0, 1.5)


def _params(seed):
    g = torch.Generator().manual_seed(seed)
    ps = [torch.nn.Parameter(torch.randn(5, 3, generator=g)), torch.nn.Parameter(torch.randn(7, generator=g))]
    return ps


@pytest.mark.parametrize("other", ["foreach_shim", "lion_pytorch"])
def test_python_lion_matches_foreach_lion(other):
    if other == "lion_pytorch":
        Lion = pytest.importorskip("lion_pytorch.foreach").Lion
    else:
        from mlpscale.optim import ForeachLion as Lion
    a, b = _params(0), _params(0)
    oa = ref.PythonLion(a, lr=0.01, betas=(0.9, 0.99), weight_decay=0.1)
    ob = Lion(b, lr=0.01, betas=(0.9, 0.99), weight_decay=0.1)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        grads = [torch.randn(p.shape, generator=g) for p in a]
        for pa, pb, gr in zip(a, b, grads):
            pa.grad, pb.grad = gr.clone(), gr.clone()
        oa.step()
        ob.step()
    for pa, pb in zip(a, b):
        torch.testing.assert_close(pa, pb)


def test_mixed_cross_entropy_reduces_to_ce_at_lambda_one():
    logits = torch.randn(6, 4)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    labels = torch.stack([y.double(), y.flip(0).double(), torch.ones(6, dtype=torch.float64)], 1)
    expect = torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.3)
    torch.testing.assert_close(ref.mixed_cross_entropy(logits, labels, 0.3), expect)


def test_reference_step_flattens_chw():
    step = ref.ReferenceStep("B_1-Wi_16", 4, 3, (0.0,) * 3, (1.0,) * 3, "cpu")
    x, labels = ref.fake_mixed_batch(8, 4, 3, "cpu")
    before = [p.clone() for p in step.model.parameters()]
    loss = step(x, labels)
    assert torch.isfinite(loss)
    assert all(not torch.equal(a, b) for a, b in zip(before, step.model.parameters()))


def _good_doc():
    cmp = Comparison("step", "toy", "img/s", "one call", {"x": 1}, [Variant("ours", lambda: 10, "ours"),
                                                                   Variant("ref", lambda: 5, "baseline")], 2, 0)
    return {"schema": "mlpscale-bench/1", "command": "python -m benchmarks step", "quick": True,
            "env": {"date_utc": "x", "python": "3", "torch": "2", "host_cpu": "c", "cpu_count": 2},
            "results": [compare(cmp, log=None).to_json(), {"suite": "loader", "skipped": "FFCV cannot load"},
                        {"suite": "peak", "name": "matmul", "value": 1.0, "unit": "TFLOP/s"}]}


@pytest.mark.parametrize("breakage", ["ratio", "values", "env", "role", "schema"])
def test_schema_rejects_broken_files(breakage):
    doc = _good_doc()
    validate(doc)
    bad = copy.deepcopy(doc)
    e = bad["results"][0]
    if breakage == "ratio":
        e["ratios"]["ref"] *= 2
    elif breakage == "values":
        e["variants"]["ours"]["values"].pop()
    elif breakage == "env":
        del bad["env"]["torch"]
    elif breakage == "role":
        e["variants"]["ref"]["role"] = "other"
    else:
        bad["schema"] = "v0"
    with pytest.raises(SchemaError):
        validate(bad)


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


def test_cli_unknown_suite_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["speed"])
    assert exc.value.code == 2
    assert "unknown suite speed" in capsys.readouterr().err


def test_convert_suite_reports_missing_script(monkeypatch):
    from benchmarks import convert
    from benchmarks.common import Sizes

    monkeypatch.setattr(convert, "REPO", "/nonexistent")
    (e,) = convert.suite_convert(Sizes.quick(), quick=True, log=None)
    assert "not found" in e["skipped"]


def test_compare_takes_self_timed_rates_as_they_are():
    rates = iter([50.0, 70.0])
    cmp = Comparison("t", "toy", "img/s", "its own window", {}, [
        Variant("proc", lambda: next(rates), "ours", self_timed=True), Variant("b", lambda: 1, "baseline")], 2, 1)
    d = compare(cmp, log=None).to_json()
    assert d["variants"]["proc"]["values"] == [50.0, 70.0]  # no warm-up call, rate used as returned


def test_e2e_processes_are_paired_and_rotated():
    from benchmarks.e2e import paired_order

    vs = [Variant(n, lambda: 1) for n in ("mlpscale", "mlpscale_bare", "reference", "reference_bare")]
    names = [[v.name for v in paired_order(r, vs)] for r in range(2)]
    assert names[0] == ["mlpscale", "mlpscale_bare", "reference", "reference_bare"]
    assert names[1] == ["reference_bare", "reference", "mlpscale_bare", "mlpscale"]


def _e2e_entry(eff):
    v = {"mlpscale": {"median": 700.0 * eff}, "mlpscale_bare": {"median": 700.0}}
    return {"suite": "e2e", "name": "toy", "variants": v, "pipeline_efficiency": {"ours": eff, "baseline": 0.9}}


def test_gate_decision():
    from benchmarks.e2e import gate_failures

    assert gate_failures([_e2e_entry(0.95)], 0.7) == []
    (line,) = gate_failures([_e2e_entry(0.5), {"suite": "step"}, {"suite": "e2e", "skipped": "x"}], 0.7)
    assert "0.50 < 0.70" in line and "\n" not in line
    assert gate_failures([_e2e_entry(0.5)], 0.0) == []      # no minimum: never fails


def test_cli_e2e_runs_each_recipe_in_its_own_process_and_reports_pipeline_efficiency(tmp_path, capsys):
    out = tmp_path / "e2e.json"
    main(["e2e", "--quick", "--json", str(out), "--min-efficiency", "0", "--root", str(tmp_path / "data")]
         + TINY_E2E + ["--reps", "1"])
    text = capsys.readouterr().out
    assert "pipeline efficiency (end to end / bare step): ours" in text
    doc = json.loads(out.read_text())
    validate(doc)
    (e,) = doc["results"]
    assert e["suite"] == "e2e" and set(e["pipeline_efficiency"]) >= {"ours"}
    assert e["pipeline_efficiency"]["ours"] > 0
    procs = e["processes"]
    pids = {p["pid"] for runs in procs.values() for p in runs}
    assert os.getpid() not in pids and len(pids) == sum(len(r) for r in procs.values())  # one process each
    assert all(p["torch_threads"] >= 1 for runs in procs.values() for p in runs)
    if "reference" in procs:  # FFCV here: the authors' loader ran in its own process too
        assert e["pipeline_efficiency"]["baseline"] > 0 and e["ratios"]["reference"] > 0
    # ours end to end is mlpscale-train's own run (train.run), bare is Trainer.step
    assert "train.run" in e["variants"]["mlpscale"]["what"] and "Trainer.step" in e["variants"]["mlpscale_bare"]["what"]


def test_cli_fails_with_one_line_when_pipeline_efficiency_is_below_the_minimum(tmp_path, capsys, monkeypatch):
    """A slow data path in ours' e2e process (injected: 5x the step's time idle after every step) must
    fail the run, as CI runs it (--quick: minimum 0.7), with one clear line."""
    # one torch thread per worker: at toy sizes on a busy 2-core machine two OpenMP threads make a tiny
    # step wait for a descheduled core (100x swings), which would drown the injected stall
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with pytest.raises(SystemExit) as exc:
        main(["e2e", "--quick", "--root", str(tmp_path / "data"), "--inject", "stall=5"] + TINY_E2E + ["--reps", "1"])
    assert exc.value.code == 3
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "pipeline efficiency of ours" in err[0] and "< 0.70" in err[0]


def test_cli_eval_uses_the_evaluate_module(tmp_path, capsys, monkeypatch):
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


def test_readme_rows_are_the_generated_ones():
    """benchmarks/README.md's result rows are what benchmarks.table makes of results/*.json."""
    import glob

    from benchmarks.table import rows

    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
    # files the table knows (the suites' and the converter's); standalone scripts with their own formats
    # (bench_scale.py, ...) have their own sections
    suite_files = [p for p in sorted(glob.glob(os.path.join(here, "results", "*.json"))) if rows(p)]
    generated = {r for p in suite_files for r in rows(p)}
    with open(os.path.join(here, "README.md")) as f:
        in_readme = [ln for ln in f.read().splitlines() if ln.endswith(".json |")]
    assert in_readme and set(in_readme) <= generated, set(in_readme) - generated
    files_shown = {ln.rsplit("|", 2)[1].strip() for ln in in_readme}
    assert files_shown == {os.path.basename(p) for p in suite_files}


@pytest.mark.slow  # two fresh processes
def test_startup_suite_times_the_users_command():
    from benchmarks.startup import suite_startup

    (e,) = suite_startup(1, log=None)
    validate_entry(e)
    assert e["suite"] == "startup" and e["unit"] == "s" and len(e["values"]) == 1
    assert 0 < e["value"] <= e["command_wall_s"][0] + 1.0   # the first step comes before the command ends
