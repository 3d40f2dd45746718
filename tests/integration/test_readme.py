"""The README runs as written: every command block marked runnable is run in order, as a user would type it, in
a fresh copy of the checkout (the digits demo: no download). A marker is an HTML comment on the line above a
```bash fence: `<!-- runnable ... -->` (the whole block; the rest of the comment is free text) or
`<!-- runnable: first N -->` (its first N commands, the ones that need no download). Long runs are shortened
here, not in the README: `--set train.epochs=1` is added to every mlpscale-train and mlpscale-finetune command
that starts a run (a `--resume` continues the shortened run). No example may use a deprecated spelling."""
import os
import re
import shlex
import shutil
import subprocess
import sys

from util import ROOT

MARKER = re.compile(r"^<!--\s*runnable\b(?::\s*first\s+(\d+)\s*-->|.*-->)\s*$")
SHORTEN = {"mlpscale-train": ["--set", "train.epochs=1"], "mlpscale-finetune": ["--set", "train.epochs=1"]}
# what a fresh clone has and a copy needs: the checkout without what builds, runs and tests leave behind
LEFT_OUT = shutil.ignore_patterns(".git", ".venv", "data", "runs", "wheels", "build", "*.egg-info", "__pycache__",
                                  ".pytest_cache", ".ruff_cache")


def commands(block: str) -> list[list[str]]:
    """The block's commands as argument lists: `\\` continuations joined, `#` comments and blank lines dropped."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        argv = shlex.split(line, comments=True)
        if argv:
            out.append(argv)
    return out


def runnable_blocks(text: str) -> list[tuple[int, list[list[str]]]]:
    """(line number of the fence, commands) of every marked block, in README order."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        m = MARKER.match(line)
        if not m:
            continue
        assert i + 1 < len(lines) and lines[i + 1].strip() == "```bash", \
            f"README.md:{i + 1}: a runnable marker must sit on the line above a ```bash fence"
        end = lines.index("```", i + 2)
        cmds = commands("\n".join(lines[i + 2:end]))
        if m.group(1):
            assert int(m.group(1)) <= len(cmds), f"README.md:{i + 1}: the block has {len(cmds)} commands"
            cmds = cmds[:int(m.group(1))]
        found.append((i + 2, cmds))
    return found


def test_readme_runnable_blocks_run_in_order(tmp_path):
    with open(os.path.join(ROOT, "README.md")) as f:
        blocks = runnable_blocks(f.read())
    assert blocks, "README.md marks no block runnable"
    copy = tmp_path / "checkout"
    shutil.copytree(ROOT, copy, ignore=LEFT_OUT)
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    for fence, cmds in blocks:
        for argv in cmds:
            if "--resume" not in argv:
                argv = argv + SHORTEN.get(argv[0], [])
            r = subprocess.run(argv, cwd=copy, env=env, capture_output=True, text=True, timeout=600)
            assert r.returncode == 0, (f"README.md:{fence}: `{shlex.join(argv)}` exited {r.returncode}\n"
                                       f"{r.stdout[-2000:]}{r.stderr[-2000:]}")
            assert "deprecated" not in r.stderr.lower(), f"README.md:{fence}: `{shlex.join(argv)}`: {r.stderr}"
