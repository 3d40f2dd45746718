"""train.compile=on on the CPU: one graph through epochs, evaluations, TTA and a resume (dynamo's counters)."""
import pytest

from benchmarks.compile_check import compile_run


@pytest.mark.slow
def test_compiled_training_compiles_one_graph_and_never_recompiles(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    r = compile_run(str(tmp_path / "data"), str(tmp_path / "runs"), "cpu")
    assert r["status"] == ["finished", "finished"] and r["epochs_done"] == [2, 3]
    assert r["tta_top1"] is not None                       # the final evaluation ran its TTA views
    for when in ("first", "after_resume"):
        c = r[when]
        assert c["graphs"] == 1 and c["frames"] == 1 and c["frames_ok"] == 1, (when, c)
        assert c["graph_breaks"] == 0, c["graph_break_reasons"]
