"""The paper's published accuracies, as data: what `mlpscale-report` compares a sweep with.

Sources: Bachmann, Anagnostidis, Hofmann, "Scaling MLPs: A Tale of Inductive Bias" (NeurIPS 2023),
Table 1 (trained from scratch, test top-1 %) and Table 2 (pre-trained on ImageNet-21k at 64px, then
fine-tuned, top-1 %, mean ± std of 3 runs), and the table of released checkpoints in the authors' README
(github.com/gregorbachmann/scaling_mlps; pre-trained 800 epochs, fine-tuned 100 epochs).

A row names which runs it describes (`match`: keys a sweep point's configuration must have):
  family  "S" (S-MLP), "B" (B-MLP) or "resnet" (from model.arch)
  arch    the model.arch name (Table 2, README)
  aug     data augmentation on in the run the row describes (Table 1: training; Table 2: pre-training)
  epochs  training epochs (Table 1)
  tta     the score with test-time augmentation (eval.tta), not the centre view
The README's checkpoints were pre-trained with augmentation (aug: True).
Columns are dataset registry names; "real" is the ImageNet ReaL score of the imagenet1k runs.
Values are (mean, std) in percent; std is None where the source gives none.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    label: str
    match: dict
    values: dict           # column -> (mean %, std % or None)


@dataclass(frozen=True)
class Table:
    key: str               # --against value
    title: str
    source: str
    columns: tuple         # dataset names, in the source's order
    rows: tuple


def _row(label, match, columns, values, stds=None):
    stds = stds or [None] * len(values)
    return Row(label, match, {c: (v, s) for c, v, s in zip(columns, values, stds)})


_T1_COLS = ("cifar10", "cifar100", "tinyimagenet", "imagenet1k")
TABLE1 = Table(
    "table1", "Table 1: trained from scratch, test top-1 (%)",
    "the paper, Table 1 (S-MLP: depth 6, width 1024; B-MLP: depth 6, width 1024, expansion 4)",
    _T1_COLS,
    (
        _row("S-MLP (@100 E)", {"family": "S", "aug": False, "epochs": 100}, _T1_COLS, [54.2, 28.8, 8.5, 9.2]),
        _row("S-MLP + DA (@1000 E)", {"family": "S", "aug": True, "epochs": 1000}, _T1_COLS, [68.9, 43.3, 25.2, 24.3]),
        _row("S-MLP + DA (@5000 E)", {"family": "S", "aug": True, "epochs": 5000}, _T1_COLS, [72.3, 44.5, 27.3, 26.8]),
        _row("B-MLP (@100 E)", {"family": "B", "aug": False, "epochs": 100}, _T1_COLS, [58.1, 30.5, 8.9, 8.7]),
        _row("B-MLP + DA (@1000 E)", {"family": "B", "aug": True, "epochs": 1000}, _T1_COLS, [70.1, 48.3, 27.2, 28.7]),
        _row("B-MLP + DA (@5000 E)", {"family": "B", "aug": True, "epochs": 5000}, _T1_COLS, [75.4, 50.4, 31.2, 31.7]),
        _row("ResNet18 + DA", {"family": "resnet", "aug": True}, _T1_COLS, [93.2, 75.6, 68.9, 69.7]),
    ),
)

_T2_COLS = ("cifar10", "cifar100", "stl10", "tinyimagenet", "imagenet1k", "real")
TABLE2 = Table(
    "table2", "Table 2: pre-trained on ImageNet-21k, fine-tuned, top-1 (%), the paper's mean ± std of 3 runs",
    "the paper, Table 2",
    _T2_COLS,
    (
        _row("B-6/Wi-1024", {"arch": "B_6-Wi_1024", "aug": False, "tta": False}, _T2_COLS,
             [69.9, 43.0, 51.5, 47.1, 15.2, 20.3], [0.1, 0.4, 0.1, 0.1, 0.2, 0.2]),
        _row("B-6/Wi-1024 + DA", {"arch": "B_6-Wi_1024", "aug": True, "tta": False}, _T2_COLS,
             [91.5, 76.4, 85.0, 62.7, 38.7, 47.0], [0.02, 0.2, 0.2, 0.1, 0.1, 0.15]),
        _row("B-12/Wi-1024 + DA", {"arch": "B_12-Wi_1024", "aug": True, "tta": False}, _T2_COLS,
             [94.2, 80.0, 89.9, 69.9, 43.3, 48.6], [0.05, 0.05, 0.1, 0.4, 0.06, 0.2]),
        _row("B-12/Wi-1024 + DA + TTA", {"arch": "B_12-Wi_1024", "aug": True, "tta": True}, _T2_COLS,
             [95.5, 82.6, 92.2, 73.1, 51.5, 57.9], [0.05, 0.2, 0.05, 0.5, 0.1, 0.1]),
    ),
)

README = Table(
    "readme", "The authors' README: released checkpoints (pre-trained 800 epochs, fine-tuned 100 epochs), top-1 (%)",
    "the authors' README (github.com/gregorbachmann/scaling_mlps)",
    _T2_COLS,
    (
        _row("B_6-Wi_512", {"arch": "B_6-Wi_512", "aug": True, "tta": False}, _T2_COLS, [88.5, 71.2, 79.9, 53.2, 33.3, 38.2]),
        _row("B_12-Wi_512", {"arch": "B_12-Wi_512", "aug": True, "tta": False}, _T2_COLS, [91.4, 75.1, 84.4, 60.0, 38.0, 42.8]),
        _row("B_6-Wi_1024", {"arch": "B_6-Wi_1024", "aug": True, "tta": False}, _T2_COLS, [92.5, 77.1, 86.5, 64.3, 40.0, 47.0]),
        _row("B_12-Wi_1024", {"arch": "B_12-Wi_1024", "aug": True, "tta": False}, _T2_COLS, [94.2, 80.0, 89.9, 69.9, 43.2, 48.6]),
        _row("B_12-Wi_1024 + TTA", {"arch": "B_12-Wi_1024", "aug": True, "tta": True}, _T2_COLS, [95.5, 82.6, 92.2, 73.1, 51.4, 57.9]),
    ),
)

TABLES = {t.key: t for t in (TABLE1, TABLE2, README)}
