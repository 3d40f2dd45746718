"""mlpscale-sweep without training: spec checks, grid names, units that reuse epochs, printed commands, the paper's
grid, launcher errors."""
import os
import re
import sys

import pytest
import yaml

from mlpscale import sweep as sw
from mlpscale.errors import UserError

from util import ROOT, probe_measure, run_main, write_spec

PAPER = os.path.join(ROOT, "configs", "sweeps", "paper_in21k.yaml")
# the sweeps' runs: tiny_config on 200 images, evaluated every 5 epochs (the data root is never read here)
SWEEP = ("data.n_train=200", "train.eval_every=5", "data.root=data")


def test_grid_expands_to_stable_readable_names(tiny_config, tmp_path):
    spec = sw.read_spec(write_spec(tmp_path / "s.yaml", set=tiny_config.spec_set(*SWEEP), grid={
        "train.epochs": [1, 2], "model.arch": ["B_1-Wi_16", "B_2-Wi_32"], "data.n_train": [100, 200],
        "optim.lr": [1.0e-3], "train.seed": [0, 1]}))
    names = [p.name for p in sw.expand_grid(spec)]
    assert len(names) == 16 and len(set(names)) == 16
    # grid order (product, first key slowest), the epochs part last; a one-value field is named too, so
    # that adding values later keeps the names of the points already run
    assert names[0] == "B_1-Wi_16__n100__lr0.001__seed0__e1"
    assert names[1] == "B_1-Wi_16__n100__lr0.001__seed1__e1"
    assert names[8] == "B_1-Wi_16__n100__lr0.001__seed0__e2"
    assert names == [p.name for p in sw.expand_grid(sw.read_spec(str(tmp_path / "s.yaml")))]  # stable
    # configurable prefixes (false: left out of names); float values stay readable
    spec = sw.read_spec(write_spec(tmp_path / "n.yaml", grid={"optim.lr": [1.0e-5, 3.0e-5], "data.n_train": [500],
                                                              "train.seed": [0]},
                                   names={"optim.lr": "LR", "data.n_train": "N", "train.seed": False}))
    assert [p.name for p in sw.expand_grid(spec)] == ["LR1e-05__N500", "LR3e-05__N500"]
    # a list of grids: products concatenated
    spec = sw.read_spec(write_spec(tmp_path / "l.yaml", grid=[{"model.arch": ["B_1-Wi_16"], "train.epochs": [1, 2]},
                                                              {"model.arch": ["B_2-Wi_32"], "train.epochs": [3]}]))
    assert [p.name for p in sw.expand_grid(spec)] == ["B_1-Wi_16__e1", "B_1-Wi_16__e2", "B_2-Wi_32__e3"]



def test_units_reuse_epochs_only_with_a_constant_schedule(tiny_config, tmp_path):
    grid = {"model.arch": ["B_1-Wi_16"], "train.epochs": [4, 6, 10]}
    tiny = tiny_config.spec_set(*SWEEP)
    s = sw.plan(sw.read_spec(write_spec(tmp_path / "c.yaml", set=tiny, grid=grid)), str(tmp_path / "o"))
    (u,) = s.units
    assert u.reuse and u.epochs == 10 and u.name == "B_1-Wi_16"
    assert [p.name for p in u.points] == ["B_1-Wi_16__e4", "B_1-Wi_16__e6", "B_1-Wi_16__e10"]
    assert "train.keep_epochs=[4, 6, 10]" in u.extra   # epoch_<T>.pt kept for every T of the grid
    assert "train.eval_every=1" in u.extra          # gcd(5, 2): the run's own test top-1 at every T
    assert not s.notes
    cos = sw.plan(sw.read_spec(write_spec(tmp_path / "k.yaml", set={**tiny, "optim.schedule": "cosine"},
                                          grid=grid)), str(tmp_path / "o2"))
    assert [u.name for u in cos.units] == ["B_1-Wi_16__e4", "B_1-Wi_16__e6", "B_1-Wi_16__e10"]
    assert not any(u.reuse for u in cos.units) and len(cos.notes) == 1 and "cosine" in cos.notes[0]
    off = sw.plan(sw.read_spec(write_spec(tmp_path / "f.yaml", set=tiny, grid=grid, reuse_epochs="off")),
                  str(tmp_path / "o3"))
    assert len(off.units) == 3



@pytest.mark.parametrize("spec, message", [
    ({"base": "demo_digits.yaml", "gird": {}}, "unknown key 'gird'; valid keys are name, base, set, grid"),
    ({"grid": {"model.arch": ["B_1-Wi_16"]}}, "'base' is missing"),
    ({"base": "no_such_config.yaml"}, "base: config file 'no_such_config.yaml' not found"),
    ({"base": "demo_digits.yaml", "grid": {"model.arch": "B_1-Wi_16"}}, "must be a non-empty list"),
    ({"base": "demo_digits.yaml", "grid": {"run.name": ["a", "b"]}}, "run.name is set by the sweep"),
    ({"base": "demo_digits.yaml", "set": {"run.out_dir": "x"}}, "run.out_dir is set by the sweep"),
    ({"base": "demo_digits.yaml", "measure": "probe"}, "measure must be 'test'"),
    ({"base": "demo_digits.yaml", "measure": {"probe": {"sett": {}}}},
     "measure.probe: unknown key 'sett'; valid keys are config, set, mode"),
    ({"base": "demo_digits.yaml", "measure": {"probe": {"mode": "half"}}}, "mode must be linear or full"),
    ({"base": "demo_digits.yaml", "slurm": {"gpus": 8}}, "slurm: unknown key 'gpus'; valid keys are partition"),
    ({"base": "demo_digits.yaml", "slurm": {"mem_gb": "lots"}}, "slurm: mem_gb: bad value 'lots'"),
    ({"base": "demo_digits.yaml", "slurm": "gpu"}, "slurm must be a mapping with the keys partition"),
    ({"base": "demo_digits.yaml", "local": {"jobs": 0}}, "local.jobs must be a whole number >= 1, got 0"),
    ({"base": "demo_digits.yaml", "reuse_epochs": "maybe"}, "reuse_epochs must be auto or off"),
    ({"base": "demo_digits.yaml", "prepare": [{"run": "x", "python": "a:b"}]}, "exactly one of run"),
    ({"base": "demo_digits.yaml", "grid": {"model.arch": ["B_1-Wi_16", "B_1-Wi_16"]}}, "two points the name"),
])
def test_spec_errors_are_one_sentence(tmp_path, spec, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)").replace("'", "'")) as e:
        sw.plan(sw.read_spec(str(path)), str(tmp_path / "out"))
    assert "\n" not in str(e.value)



@pytest.mark.parametrize("grid, message", [
    ({"model.archh": ["B_1-Wi_16"]}, "unknown key 'model.archh'; valid keys are model.arch"),
    ({"model.arch": ["B_1-Wi_16", "X_1-Wi_3"]}, "point X_1-Wi_3: .*model.arch"),   # a later point: all are loaded
    ({"train.epochs": [1, 0]}, "train.epochs=0 must be >= 1"),
])
def test_unknown_fields_and_bad_values_stop_before_anything_runs(tiny_config, tmp_path, capsys, grid, message):
    spec = write_spec(tmp_path / "s.yaml", set=tiny_config.spec_set(*SWEEP), grid=grid)
    code, _, err = run_main(sw.main, capsys, spec, "--out", str(tmp_path / "out"))
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()                      # nothing was written, nothing ran



def test_print_commands_one_line_per_unit_nothing_runs(tiny_config, tmp_path, capsys):
    spec = write_spec(tmp_path / "s.yaml", set=tiny_config.spec_set(*SWEEP), measure=probe_measure("data"),
                      grid={"model.arch": ["B_1-Wi_16", "B_2-Wi_32"], "train.epochs": [1, 2]})
    code, out, _ = run_main(sw.main, capsys, spec, "--out", str(tmp_path / "out"), "--print-commands")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 2                                       # two training units (epochs reused)
    first = lines[0]
    assert first.startswith(f"cd {tmp_path} && mlpscale-train --config ")
    assert first.count("mlpscale-train --config") == 1 and first.count("mlpscale-finetune --config") == 2
    assert "run.name=B_1-Wi_16 " in first and "train.epochs=2" in first
    assert "train.keep_epochs=[1, 2]" in first                 # epoch_1.pt is kept
    assert f"finetune.from={tmp_path}/out/points/B_1-Wi_16/epoch_1.pt" in first
    assert "run.name=B_1-Wi_16__e2" in first
    assert not (tmp_path / "out" / "points").exists()



def test_paper_spec_is_the_papers_grid(tmp_path, capsys):
    s = sw.plan(sw.read_spec(PAPER), str(tmp_path / "paper"))
    assert len(s.points) == 6 * 4 * 5 and len(s.units) == 24 and all(u.reuse and u.epochs == 800 for u in s.units)
    cfg = s.units[0].cfg
    assert cfg["optim"]["lr"] == 1e-5 and cfg["optim"]["weight_decay"] == 1e-3 and cfg["train"]["batch_size"] == 16384
    assert {p.values["model.arch"] for p in s.points} == {"B_6-Wi_256", "B_12-Wi_256", "B_6-Wi_512", "B_12-Wi_512",
                                                          "B_6-Wi_1024", "B_12-Wi_1024"}
    assert sorted({p.epochs for p in s.points}) == [50, 100, 200, 400, 800]
    assert s.probe_cfg["finetune"]["mode"] == "linear" and s.probe_cfg["data"]["dataset"] == "cifar100"
    assert s.probe_cfg["optim"]["lr"] == 1e-5 and s.probe_cfg["train"]["epochs"] == 50
    code, _, err = run_main(sw.main, capsys, PAPER, "--out", str(tmp_path / "p2"), "--launcher", "slurm")
    assert code == 2 and ("sbatch" in err or "pip install submitit" in err) and err.count("\n") == 1



def test_slurm_without_submitit_says_pip_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)         # import submitit -> ImportError
    code, _, err = run_main(sw.main, capsys, PAPER, "--out", str(tmp_path / "p"), "--launcher", "slurm")
    assert code == 2 and "pip install submitit" in err and err.count("\n") == 1


def test_table_specs_plan_three_seeds_per_row(tmp_path, capsys):
    """Every configs/sweeps/table<1|2>_<dataset>.yaml is a valid sweep whose rows each train 3 seeds."""
    import glob

    from mlpscale.paper_tables import TABLE1, TABLE2

    specs = sorted(glob.glob(os.path.join(ROOT, "configs", "sweeps", "table[12]_*.yaml")))
    names = {os.path.basename(s) for s in specs}
    assert {f"table1_{d}.yaml" for d in TABLE1.columns} <= names
    assert {f"table2_{d}.yaml" for d in TABLE2.columns if d != "real"} <= names
    for spec in specs:
        code, out, err = run_main(sw.main, capsys, spec, "--dry-run", "--out", str(tmp_path / os.path.basename(spec)))
        assert code == 0, err
        lines = [ln for ln in out.splitlines() if "seed" in ln]
        assert lines, (spec, out)
        for seed in (0, 1, 2):
            assert sum(f"seed{seed}" in ln for ln in lines) == len(lines) // 3, (spec, out)
