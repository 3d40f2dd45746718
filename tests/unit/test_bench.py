"""The developer benchmarks (python -m benchmarks): the timing harness, the reference recipe's pieces, the results
schema and the CLI's errors (the suites themselves run in integration/test_bench_suites.py)."""
import copy
import os

import pytest
import torch

from benchmarks import reference as ref
from benchmarks.cli import main
from benchmarks.schema import SchemaError, validate
from benchmarks.timing import Comparison, Variant, compare, summarize

from util import ROOT

pytestmark = pytest.mark.usefixtures("tmpdir_under_tmp_path")


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










def test_readme_rows_are_the_generated_ones():
    """benchmarks/README.md's result rows are what benchmarks.table makes of results/*.json."""
    import glob

    from benchmarks.table import rows

    here = os.path.join(ROOT, "benchmarks")
    # files the table knows (the suites' and the converter's); standalone scripts with their own formats
    # (bench_scale.py, ...) have their own sections
    suite_files = [p for p in sorted(glob.glob(os.path.join(here, "results", "*.json"))) if rows(p)]
    generated = {r for p in suite_files for r in rows(p)}
    with open(os.path.join(here, "README.md")) as f:
        in_readme = [ln for ln in f.read().splitlines() if ln.endswith(".json |")]
    assert in_readme and set(in_readme) <= generated, set(in_readme) - generated
    files_shown = {ln.rsplit("|", 2)[1].strip() for ln in in_readme}
    assert files_shown == {os.path.basename(p) for p in suite_files}


