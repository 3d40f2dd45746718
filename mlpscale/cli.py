"""The command-line vocabulary shared by every mlpscale command, and the one way their parsers are built.

`VOCABULARY` lists each flag that more than one command could use, with its value, its meaning and
the commands that have it; `add(parser, flag)` adds it with that meaning as the start of its help
line, so a flag reads the same everywhere. `render_table()` prints the README's table from the same
data, and tests/test_cli_vocabulary.py checks every console script's `build_parser()` against it.
`command_parser(prog, what, example)` makes a parser whose --help starts with what the command does
and one example. `deprecate(parser, old, new)` keeps an old spelling working, with a note on stderr.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Flag:
    flag: str
    metavar: str | None   # None: a switch (no value)
    type: type | None     # of the value; None for a switch
    meaning: str          # every help line of this flag starts with it
    commands: tuple[str, ...]
    repeat: bool = False  # may be given several times (a list)
    related: str = ""     # a config field or near flag, and how it differs


CONVERT, TRAIN, FINETUNE, EVAL, INFO = "convert", "train", "finetune", "eval", "info"
IMPORT, SWEEP, SCALING, REPORT = "import-paper", "sweep", "scaling", "report"

VOCABULARY: tuple[Flag, ...] = (
    Flag("--dataset", "NAME", str, "dataset name: the folder ROOT/NAME/ that mlpscale-convert writes",
         (CONVERT, EVAL, IMPORT), related="config: data.dataset"),
    Flag("--root", "ROOT", str, "data root: the folder holding one sub-folder per converted dataset",
         (CONVERT, EVAL), related="config: data.root; written by convert, read by the others"),
    Flag("--res", "R", int, "image resolution in pixels (square images)", (CONVERT, EVAL, INFO, IMPORT),
         related="config: data.res"),
    Flag("--num-classes", "K", int, "number of classes of the model's head", (INFO, IMPORT),
         related="--class-list FILE (convert imagenet21k) names the classes, it does not count them"),
    Flag("--overwrite", None, None, "replace an existing output of the same name instead of refusing",
         (TRAIN, FINETUNE, IMPORT)),
    Flag("--json", None, None, "print the result as one JSON object on stdout instead of text", (EVAL, INFO)),
    Flag("--out", "DIR", str, "output folder (created if missing)", (EVAL, IMPORT, SWEEP, SCALING, REPORT),
         related="always a folder; files inside it have fixed names (eval.json, scaling.json, ...)"),
    Flag("--set", "KEY=VALUE", str, "override a config field, e.g. --set optim.lr=1e-4 (repeatable)",
         (TRAIN, FINETUNE, EVAL, SWEEP), repeat=True,
         related="values are YAML: lists as --set aug.crop_scale=[0.5,1.0]"),
    Flag("--config", "FILE", str, "training config: a YAML file, or a bare name of a shipped config (bmlp12)",
         (TRAIN, FINETUNE), related="sweep takes its spec as SPEC, resolved the same way"),
    Flag("--workers", "N", int, "processes decoding images in parallel", (CONVERT,),
         related="--jobs: whole training runs at a time; config data.workers: loader threads"),
    Flag("--jobs", "N", int, "training runs at a time", (SWEEP,),
         related="--workers: decode processes inside one command"),
    Flag("--batch-size", "B", int, "images per batch", (EVAL,), related="config: train.batch_size"),
    Flag("--epochs", "T", int, "epoch count T: passes over the training set", (INFO, SCALING),
         related="config: train.epochs"),
    Flag("--seed", "S", int, "random seed: the same seed gives the same result", (CONVERT,),
         related="--tta-seed (eval): the seed of the TTA crops only"),
    Flag("--quiet", None, None, "no progress bars, no 'wrote' lines", (CONVERT,)),
)
BY_FLAG = {f.flag: f for f in VOCABULARY}


def add(parser: argparse.ArgumentParser, flag: str, more: str = "", **kwargs) -> argparse.Action:
    """Add a vocabulary flag: its metavar, type and meaning come from VOCABULARY; `more` adds to the
    help line (a default, the command's use of it); kwargs are argparse's (default, required, ...), and
    `type` may narrow the table's type (a range of ints) but must still give a value of that type."""
    f = BY_FLAG[flag]
    help_line = f.meaning + (f"; {more}" if more else "")
    if f.metavar is None:
        return parser.add_argument(flag, action="store_true", help=help_line, **kwargs)
    kwargs.setdefault("type", f.type)
    if f.repeat:
        kwargs.setdefault("default", [])
        return parser.add_argument(flag, action="append", metavar=f.metavar, help=help_line, **kwargs)
    return parser.add_argument(flag, metavar=f.metavar, help=help_line, **kwargs)


# --- parsers ------------------------------------------------------------------------------------------

def command_parser(prog: str, what: str, example: str, details: str = "", parser_cls=argparse.ArgumentParser,
                   **kwargs) -> argparse.ArgumentParser:
    """A parser whose --help opens with what the command does (one sentence), then one example."""
    return parser_cls(prog=prog, description=describe(what, example, details), formatter_class=HelpFormatter,
                      **kwargs)


def describe(what: str, example: str, details: str = "") -> str:
    text = f"{what}\n\nexample:\n  {example}"
    return text + (f"\n\n{details.strip()}" if details.strip() else "")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions as written, and leaves deprecated spellings out of --help."""

    def _format_action_invocation(self, action):
        old = getattr(action, "old_spellings", ())
        if not old:
            return super()._format_action_invocation(action)
        kept = action.option_strings
        action.option_strings = [o for o in kept if o not in old]
        try:
            return super()._format_action_invocation(action)
        finally:
            action.option_strings = kept


_NOTING: dict[type, type] = {}


def _noting(cls: type) -> type:
    """`cls` (an argparse action class) that prints a deprecation note when used by an old spelling."""
    if cls not in _NOTING:
        def __call__(self, parser, namespace, values, option_string=None):
            if option_string in self.old_spellings:
                print(deprecation_note(option_string, self.option_strings[0]), file=sys.stderr)
            cls.__call__(self, parser, namespace, values, option_string)

        _NOTING[cls] = type(f"Noting{cls.__name__}", (cls,), {"__call__": __call__})
    return _NOTING[cls]


def deprecation_note(old: str, new: str) -> str:
    return f"note: {old} is deprecated and goes in the next release; use {new}"


def deprecate(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    """Keep `old` working for one release as another spelling of the already added flag `new`: the same
    action (value, default, required), hidden from --help, with a note on stderr when used."""
    target = parser._option_string_actions[new]
    if not hasattr(target, "old_spellings"):
        target.__class__ = _noting(type(target))
        target.old_spellings = []
    target.old_spellings.append(old)
    target.option_strings.append(old)
    parser._option_string_actions[old] = target


# --- the README table ---------------------------------------------------------------------------------

def render_table() -> str:
    """The README's table of shared flags (tests check that the README holds exactly this)."""
    rows = ["| flag | meaning | commands | related, and how it differs |", "|---|---|---|---|"]
    for f in VOCABULARY:
        spelled = f.flag + (f" {f.metavar}" if f.metavar else "")
        rows.append(f"| `{spelled}` | {f.meaning} | {', '.join(f.commands)} | {f.related} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(render_table())
