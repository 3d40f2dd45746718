"""The README runs as written: every command block marked `<!-- runnable ... -->` is run, in order, line
by line, in a fresh folder holding a copy of configs/ (the offline digits data; a training run is
shortened to one epoch here, not in the README). An example that fails fails this test."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
MARK = "<!-- runnable"


def runnable_commands(readme: str) -> list[str]:
    """The command lines of the marked blocks, in README order (comments stripped)."""
    commands = []
    for block in re.findall(re.escape(MARK) + r"[^\n]*\n```bash\n(.*?)```", readme, flags=re.S):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def shortened(command: str) -> list[str]:
    argv = shlex.split(command)
    if argv[0] in ("mlpscale-train", "mlpscale-finetune") and "--resume" not in argv:
        argv += ["--set", "train.epochs=1", "--set", "run.progress=false"]
    return argv


def test_readme_marks_the_offline_path():
    commands = runnable_commands((REPO / "README.md").read_text())
    assert [c.split()[0] for c in commands][:3] == ["mlpscale-info", "mlpscale-info", "mlpscale-convert"]
    tools = {c.split()[0] for c in commands}
    assert {"mlpscale-train", "mlpscale-eval"} <= tools


@pytest.mark.slow
def test_readme_examples_run_in_order(tmp_path):
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    for command in runnable_commands((REPO / "README.md").read_text()):
        r = subprocess.run(shortened(command), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"README example failed: {command}\n{r.stderr[-2000:]}"
        assert "deprecated" not in r.stderr, command
    assert (tmp_path / "runs" / "demo_lr1e-4" / "summary.json").is_file()
    assert (tmp_path / "runs" / "demo_digits" / "eval.json").is_file()
