"""benchmarks/gpu_check.py at toy sizes on the CPU, so the H200 script never rots."""
import json
import os
import subprocess
import sys

import pytest

from benchmarks.schema import validate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(tmp_path, *extra):
    out = tmp_path / "gpu_check.json"
    (tmp_path / "tmp").mkdir()
    proc = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "gpu_check.py"), "--toy", "--out",
                           str(out), "--site", str(tmp_path / "site"), *extra],
                          check=False, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": REPO, "TMPDIR": str(tmp_path / "tmp")})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    validate(doc)
    return doc, proc.stdout


def _by_suite(doc):
    by_suite = {}
    for e in doc["results"]:
        by_suite.setdefault(e["suite"], []).append(e)
    return by_suite


def test_gpu_check_toy_without_ffcv_runs_everything_but_the_authors_loader(tmp_path):
    doc, text = _run(tmp_path, "--no-ffcv")
    assert [e["suite"] for e in doc["results"]] == ["peak", "step", "e2e", "tiered", "tiered", "eval", "step",
                                                    "loader"]
    by_suite = _by_suite(doc)
    assert by_suite["peak"][0]["value"] > 0
    assert len(by_suite["step"]) == 2 and all(e["ratios"]["reference"] > 0 for e in by_suite["step"])
    # e2e: ours from a beton mlpscale wrote (no FFCV), each variant its own process; the authors' loader skipped
    (e2e,) = by_suite["e2e"]
    assert "FFCV cannot load" in e2e["variants"]["reference"]["skipped"]
    assert e2e["pipeline_efficiency"]["ours"] > 0 and "mlpscale_bare" in e2e["processes"]
    assert {"mlpscale", "mlpscale_bare", "reference_bare"} <= set(e2e["mfu"])
    # tiered: a JPEG beton decoded once without FFCV into two tiers, then training from them
    decode, train = by_suite["tiered"]
    assert decode["value"] > 0 and decode["decoder"] == "opencv" and decode["host_bytes"] > 0
    assert set(train["variants"]) == {"tiered", "device_resident"} and train["tier_efficiency"] > 0
    assert set(train["loader_wait_share"]) == {"tiered", "device_resident"} and set(train["mfu"]) >= {"tiered"}
    # eval: TTA through mlpscale.evaluate vs the bare forward; the authors' loader skipped
    (ev,) = by_suite["eval"]
    assert ev["variants"]["reference"]["skipped"] and ev["pipeline_efficiency"]["ours"] > 0
    assert "FFCV cannot load" in by_suite["loader"][0]["skipped"]
    assert doc["env"]["ffcv_status"] == "disabled by --no-ffcv"
    assert "done in" in text


@pytest.mark.slow
def test_gpu_check_toy_with_ffcv(tmp_path):
    pytest.importorskip("ffcv")
    doc, _ = _run(tmp_path)
    suites = [e["suite"] for e in doc["results"]]
    assert suites == ["peak", "step", "e2e", "tiered", "tiered", "eval", "step", "loader"]
    assert all("error" not in e and "skipped" not in e for e in doc["results"])
    by_suite = _by_suite(doc)
    assert by_suite["e2e"][0]["pipeline_efficiency"]["baseline"] > 0
    assert by_suite["eval"][0]["ratios"]["reference"] > 0


def test_bootstrap_imports_a_carried_wheel_without_pip(tmp_path):
    import importlib.util
    import zipfile

    spec = importlib.util.spec_from_file_location("gpu_check", os.path.join(REPO, "benchmarks", "gpu_check.py"))
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "mlpscale_fake_carried-1.0-py3-none-any.whl", "w") as z:
        z.writestr("mlpscale_fake_carried/__init__.py", "MARK = 42\n")
    wanted = [("mlpscale_fake_carried", "mlpscale_fake_carried-*.whl"), ("mlpscale_fake_absent", "absent-*.whl")]
    try:
        status = gpu_check.bootstrap(str(wheels), str(tmp_path / "site"), False, wanted)
        import mlpscale_fake_carried

        assert mlpscale_fake_carried.MARK == 42
        assert status["mlpscale_fake_carried"].startswith("from ")
        assert status["mlpscale_fake_absent"].startswith("unavailable")
    finally:
        sys.modules.pop("mlpscale_fake_carried", None)
        sys.path[:] = [p for p in sys.path if "mlpscale_fake_carried" not in p]
