"""mlpscale-bench: the timing harness, the reference recipe's pieces, the results schema and the CLI."""
import copy
import json
import os

import pytest
import torch

from mlpscale.bench import reference as ref
from mlpscale.bench.cli import main
from mlpscale.bench.schema import SchemaError, validate
from mlpscale.bench.timing import Comparison, Variant, compare, summarize

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--arch", "B_1-Wi_32", "--res", "8", "--batch", "32", "--classes", "10", "--n-train", "256",
        "--steps", "1", "--batches", "2", "--reps", "2", "--warmup", "1"]


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
    return {"schema": "mlpscale-bench/1", "command": "mlpscale-bench step", "quick": True,
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
    from mlpscale.bench import suites

    monkeypatch.setattr(suites, "REPO", "/nonexistent")
    (e,) = suites.suite_convert(suites.Sizes.quick(), quick=True, log=None)
    assert "not found" in e["skipped"]
