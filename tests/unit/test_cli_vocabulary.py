"""One command-line vocabulary: every console script's build_parser() against mlpscale.cli.VOCABULARY (the
table the README shows), help texts for users, the old spellings that still work for one release, and
the messages of --set, config names and conflicting options."""
from __future__ import annotations

import argparse
import csv
import importlib
import json
import pkgutil
import re
import tomllib
from pathlib import Path

import pytest

import data_prep
import mlpscale
from mlpscale import cli
from mlpscale.config import load_config, to_dict
from mlpscale.errors import UserError

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def build_parser(script: str) -> argparse.ArgumentParser:
    return importlib.import_module(SCRIPTS[script].split(":")[0]).build_parser()


def walk(parser: argparse.ArgumentParser):
    """The parser and its sub-commands' parsers (mlpscale-convert SOURCE, combine, subset)."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from walk(sub)


def options(script: str):
    """(parser, action, option string) of every visible option of a console script."""
    for parser in walk(build_parser(script)):
        for action in parser._actions:
            for opt in action.option_strings:
                if opt not in getattr(action, "old_spellings", ()):
                    yield parser, action, opt


SAMPLE = {int: "8", str: "x"}  # a value every use of a flag of that type accepts


def short(script: str) -> str:
    return script.removeprefix("mlpscale-")


def test_every_console_script_has_build_parser_named_after_it():
    for script in SCRIPTS:
        assert build_parser(script).prog == script


def test_shared_flags_have_one_name_type_and_meaning_everywhere():
    """Every use of a vocabulary flag has the table's metavar, type, kind (switch / value / repeated)
    and a help line that starts with the table's meaning; the table lists exactly the commands using it."""
    used: dict[str, set[str]] = {}
    for script in SCRIPTS:
        for parser, action, opt in options(script):
            if opt not in cli.BY_FLAG:
                continue
            f = cli.BY_FLAG[opt]
            where = f"{parser.prog} {opt}"
            used.setdefault(opt, set()).add(short(script))
            assert action.help.startswith(f.meaning), where
            if f.metavar is None:
                assert isinstance(action, argparse._StoreTrueAction), where
                continue
            assert action.metavar == f.metavar, where
            assert type((action.type or str)(SAMPLE[f.type])) is f.type, where  # a range of ints is still int
            assert isinstance(action, argparse._AppendAction) == f.repeat, where
    for f in cli.VOCABULARY:
        assert used.get(f.flag, set()) == set(f.commands), f.flag


def test_no_command_spells_a_shared_concept_its_own_way():
    """The old spellings are hidden aliases only, and near names of a vocabulary flag are not options."""
    near = {"--data", "--name", "--force", "--classes", "--batch", "--threads", "--data-root", "--num_classes",
            "--output", "--out-dir", "--dataset-root"}
    for script in SCRIPTS:
        for parser, _action, opt in options(script):
            assert opt not in near, f"{parser.prog} {opt}"


def test_readme_holds_the_vocabulary_table():
    """The README's table is rendered from mlpscale.cli.VOCABULARY (`python -m mlpscale.cli` prints it)."""
    assert cli.render_table() in (REPO / "README.md").read_text()


def _internal_names() -> set[str]:
    """Module-level constants of the project (RECIPES, NAME_PREFIX, ...): no help text may cite them."""
    names = set()
    for pkg in (mlpscale, data_prep):
        for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if m.name.endswith("__main__"):
                continue
            names |= {k for k in vars(importlib.import_module(m.name)) if re.fullmatch(r"[A-Z][A-Z0-9_]{3,}", k)}
    return names


def test_help_opens_with_what_the_command_does_and_an_example():
    internal = _internal_names()
    for script in SCRIPTS:
        top = build_parser(script)
        for parser in walk(top):
            text = parser.format_help()
            metavars = " ".join(a.metavar for a in parser._actions if isinstance(a.metavar, str))
            metavars = set(re.findall(r"\w+", metavars))
            cited = {n for n in internal - metavars if re.search(rf"\b{n}\b", text)}
            assert not cited, f"{parser.prog} --help cites {cited}"
            assert not re.search(r"\b(PAPER|DESIGN|COMMON)\.md", text), parser.prog  # notes outside the repository
            for action in parser._actions:
                assert action.help, f"{parser.prog} {action.option_strings or action.dest} has no help line"
            what, example = parser.description.split("\n\n")[:2]
            assert what.endswith(".") and "\n" not in what, parser.prog
            assert example.startswith(f"example:\n  {parser.prog} "), parser.prog


# --- old spellings: each still works, with a note on stderr ---------------------------------------------

RENAMED = [  # (script, argv with the old spelling, the same with the new one)
    ("mlpscale-convert", ["digits", "--out", "d"], ["digits", "--root", "d"]),
    ("mlpscale-convert", ["digits", "--root", "d", "--name", "x"], ["digits", "--root", "d", "--dataset", "x"]),
    ("mlpscale-convert", ["combine", "--dataset", "x", "--res", "8", "--out", "d"],
     ["combine", "--dataset", "x", "--res", "8", "--root", "d"]),
    ("mlpscale-convert", ["subset", "--name", "x", "--res", "8", "--root", "d", "--n", "5"],
     ["subset", "--dataset", "x", "--res", "8", "--root", "d", "--n", "5"]),
    ("mlpscale-convert", ["imagenet21k", "--root", "d", "--classes", "m.json"],
     ["imagenet21k", "--root", "d", "--class-list", "m.json"]),
    ("mlpscale-eval", ["runs/x", "--data", "cifar10"], ["runs/x", "--dataset", "cifar10"]),
    ("mlpscale-eval", ["runs/x", "--batch", "64"], ["runs/x", "--batch-size", "64"]),
    ("mlpscale-import-paper", ["w", "--arch", "B_6-Wi_512", "--out", "o", "--force"],
     ["w", "--arch", "B_6-Wi_512", "--out", "o", "--overwrite"]),
]


@pytest.mark.parametrize("script,old,new", RENAMED, ids=lambda x: " ".join(x) if isinstance(x, list) else x)
def test_old_spelling_still_works_with_a_note(script, old, new, capsys):
    old_flag = next(a for a in old if a.startswith("--") and a not in new)
    new_flag = next(a for a in new if a.startswith("--") and a not in old)
    assert build_parser(script).parse_args(old) == build_parser(script).parse_args(new)
    err = capsys.readouterr().err
    assert err.strip() == cli.deprecation_note(old_flag, new_flag)
    assert not re.search(rf"(?<![\w-]){old_flag}(?![\w-])", build_parser(script).format_help())


def test_old_convert_spellings_convert(tmp_path, capsys):
    from data_prep.cli import main

    main(["digits", "--res", "8", "--out", str(tmp_path), "--name", "old", "--quiet", "--workers", "1"])
    assert json.loads((tmp_path / "old" / "meta_8.json").read_text())["counts"] == {"train": 1437, "test": 360}
    assert capsys.readouterr().err.count("is deprecated") == 2


def test_eval_out_is_a_folder_and_an_old_json_path_still_works(tmp_path, capsys):
    from mlpscale.evaluate import eval_json_path

    assert eval_json_path(str(tmp_path / "o"), "runs/x/last.pt") == str(tmp_path / "o" / "eval.json")
    assert capsys.readouterr().err == ""
    assert eval_json_path(str(tmp_path / "e.json"), "runs/x/last.pt") == str(tmp_path / "e.json")
    assert "--out FILE.json is deprecated" in capsys.readouterr().err
    (tmp_path / "f").write_text("")
    with pytest.raises(UserError, match="is a file; pass a folder"):
        eval_json_path(str(tmp_path / "f"), "runs/x/last.pt")


# --- config names, --set, conflicts ---------------------------------------------------------------------

def test_set_errors_name_the_set_and_show_the_syntax(tmp_path):
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("train:\n  epochs: 3\n")
    with pytest.raises(UserError) as e:
        load_config(str(cfg), ["aug.crop_scale=0.5,1.0"])
    assert str(e.value).startswith("--set aug.crop_scale=0.5,1.0:") and "--set aug.crop_scale=[" in str(e.value)
    with pytest.raises(UserError) as e:
        load_config(str(cfg), ["optim.lrr=1e-4"])
    assert str(e.value).startswith("--set optim.lrr=1e-4:") and "did you mean optim.lr" in str(e.value)
    assert str(cfg) not in str(e.value)  # the file is fine; the --set is not
    with pytest.raises(UserError, match=r"^--set train.epochs=0: train.epochs=0 must be >= 1"):
        load_config(str(cfg), ["train.epochs=0"])
    with pytest.raises(UserError, match=r"did you mean train.epochs\?"):
        load_config(str(cfg), ["epochs=5"])


def test_file_mistakes_are_still_blamed_on_the_file(tmp_path):
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("train:\n  epochs: 0\n  epoch: 3\n")
    with pytest.raises(UserError, match=f"^{re.escape(str(cfg))}: unknown key 'train.epoch'"):
        load_config(str(cfg), ["optim.lr=1e-4"])


def test_mistyped_config_name_gets_the_closest_matches():
    with pytest.raises(UserError) as e:
        load_config("demo_digit")
    msg = str(e.value)
    assert "did you mean demo_digits.yaml?" in msg and "bmlp12" not in msg


def test_sweep_resolves_bare_spec_names_like_configs(capsys):
    from mlpscale.sweep.spec import read_spec

    assert read_spec("mini_cpu").path == read_spec("mini_cpu.yaml").path
    assert Path(read_spec("mini_cpu").path) == (REPO / "configs" / "sweeps" / "mini_cpu.yaml").resolve()
    assert read_spec("mini_cpu", ["optim.lr=3e-3"]).sets[-1] == "optim.lr=3e-3"
    with pytest.raises(UserError, match="did you mean mini_cpu.yaml"):
        read_spec("mini_cp")


@pytest.mark.parametrize("argv,message", [
    (["mini_cpu", "--wait"], "--wait applies to --launcher slurm only"),
    (["mini_cpu", "--jobs", "2", "--launcher", "slurm"], "--jobs applies to --launcher local only"),
])
def test_sweep_refuses_options_that_would_be_ignored(argv, message, capsys):
    from mlpscale.sweep.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["mini_cpu", "--dry-run", "--collect"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_resume_with_config_is_refused(tmp_path, capsys):
    from mlpscale.train import main

    with pytest.raises(SystemExit) as e:
        main(["--resume", str(tmp_path), "--config", "demo_digits.yaml"])
    assert e.value.code == 2 and "drop --config" in capsys.readouterr().err


def test_eval_set_applies_to_the_runs_config_and_eval_starts_from_defaults():
    from mlpscale.config import Config
    from mlpscale.evaluate import build_parser as eval_parser
    from mlpscale.evaluate import eval_config

    run = Config()
    run.data.dataset, run.eval.tta, run.eval.real = "digits", 100, True
    ck = {"config": to_dict(run)}
    cfg = eval_config(ck, "last.pt", eval_parser().parse_args(["x", "--set", "data.workers=3"]))
    assert (cfg.data.workers, cfg.data.dataset, cfg.eval.tta, cfg.eval.real) == (3, "digits", 0, False)
    a = eval_parser().parse_args(["x", "--set", "eval.tta=8", "--root", "elsewhere", "--real"])
    cfg = eval_config(ck, "last.pt", a)
    assert (cfg.eval.tta, cfg.data.root, cfg.eval.real) == (8, "elsewhere", True)
    a = eval_parser().parse_args(["x", "--tta", "4", "--set", "eval.tta=8"])
    assert eval_config(ck, "last.pt", a).eval.tta == 4  # the flag wins
    with pytest.raises(UserError, match=r"^--set aug.crop_scale=0.5:.*write e.g. --set aug.crop_scale=\["):
        eval_config(ck, "last.pt", eval_parser().parse_args(["x", "--set", "aug.crop_scale=0.5"]))


def test_scaling_writes_into_the_folder_of_its_inputs(tmp_path, capsys):
    from mlpscale import scaling

    example = next(REPO.glob("tests/**/scaling/synthetic_sweep.csv"))
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    with open(example) as f, open(sweep / "results.csv", "w", newline="") as g:
        rows = list(csv.DictReader(f))
        w = csv.DictWriter(g, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    scaling.main([str(sweep), "--no-plots"])
    assert (sweep / "scaling.json").is_file() and (sweep / "points.csv").is_file()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "results.csv").write_text((sweep / "results.csv").read_text())
    with pytest.raises(SystemExit):
        scaling.main([str(sweep), str(tmp_path / "other"), "--no-plots"])
    assert "pass --out DIR" in capsys.readouterr().err
