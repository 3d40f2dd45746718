"""What a run reports: the per-epoch metrics row, the progress display, the NaN check, compute and MFU.

Compute follows the paper: C = fvcore flops per forward x 3 x N x T (`paper_compute_pflops`, N the
run's training-set size, T the epochs completed), reported as `compute_pflops`. The images actually
pushed through the model (whole batches only) are reported apart as `processed_pflops`; MFU counts
true FLOPs (2 per MAC, x3 for forward + backward, `MLP.estimate_mfu`).

Nothing here synchronises with the device per step: losses are summed on the device, and the
first optimizer step with a non-finite loss is remembered on the device (`FiniteGuard`) and read
at log points only.
"""
from __future__ import annotations

import json
import os
import sys

import torch

from .errors import UserError
from .io import atomic_file


def paper_compute_pflops(flops_per_forward: int, n_train: int, epochs: float) -> float:
    """The paper's compute in PFLOPs: flops per forward x 3 (forward + backward) x N x T."""
    return flops_per_forward * 3 * n_train * epochs / 1e15


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc; None elsewhere): start-up as the user sees it,
    interpreter and imports included."""
    import time

    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, after the command name
        with open("/proc/stat") as f:
            boot = next(int(ln.split()[1]) for ln in f if ln.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return time.time() - (boot + start_ticks / os.sysconf("SC_CLK_TCK"))


class TrainingDiverged(UserError):
    pass


class FiniteGuard:
    """Remembers, on the device, the first optimizer step whose loss was NaN/inf."""

    def __init__(self, device):
        self.bad_step = torch.tensor(-1, device=device)

    def update(self, loss: torch.Tensor, step: int) -> None:
        self.bad_step = torch.where((self.bad_step < 0) & ~torch.isfinite(loss), step, self.bad_step)

    def check(self, epoch: int, last_good: str) -> None:
        """The one host sync of a log interval; raises if a step diverged."""
        s = int(self.bad_step.item())
        if s >= 0:
            raise TrainingDiverged(
                f"the training loss became NaN/inf at optimizer step {s} (epoch {epoch}); no checkpoint was "
                f"written after it: lower optim.lr or set optim.grad_clip, then restart "
                + (f"(last good state: {last_good})" if os.path.exists(last_good) else
                   "from scratch (no checkpoint was saved before it)"))


class EpochSums:
    """Running sums of the current epoch (kept in checkpoints, so a resumed epoch reports whole)."""

    def __init__(self, state: dict | None = None):
        s = state or {}
        self.loss, self.count = float(s.get("loss", 0.0)), int(s.get("count", 0))
        self.wait_s, self.time_s = float(s.get("wait_s", 0.0)), float(s.get("time_s", 0.0))

    def state(self) -> dict:
        return {"loss": self.loss, "count": self.count, "wait_s": self.wait_s, "time_s": self.time_s}


def epoch_row(epoch: int, step: int, sums: EpochSums, batch_size: int, lr: float, elapsed_s: float,
              compute_pflops: float, processed_pflops: float, model=None, peak_flops: float | None = None) -> dict:
    img_s = sums.count * batch_size / sums.time_s if sums.time_s > 0 else 0.0
    row = {
        "epoch": epoch, "step": step,
        "train_loss": sums.loss / max(1, sums.count),
        "lr": lr,
        "img_per_s": img_s,
        "data_wait_share": sums.wait_s / sums.time_s if sums.time_s > 0 else 0.0,
        "compute_pflops": compute_pflops,
        "processed_pflops": processed_pflops,
        "elapsed_s": elapsed_s,
    }
    if peak_flops and model is not None:
        row["mfu"] = model.estimate_mfu(img_s, peak_flops)
    return row


class Progress:
    """A tqdm bar on a terminal; one line per epoch in logs and CI (a disabled bar has no counters)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.tty = enabled and sys.stdout.isatty()
        self.bar = None

    def start(self, total: int, initial: int, desc: str) -> None:
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, leave=False, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def postfix(self, **kw) -> None:
        if self.bar is not None:
            self.bar.set_postfix(**kw)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def epoch_line(self, row: dict, epochs: int) -> None:
        if self.enabled and not self.tty:
            evals = f" test_top1 {row['test_top1']:.2f}%" if "test_top1" in row else ""
            print(f"epoch {row['epoch']}/{epochs} loss {row['train_loss']:.4f}{evals} "
                  f"{row['img_per_s']:.0f} img/s {row['compute_pflops']:.4g} PFLOPs", flush=True)


class MetricsLog:
    """One JSON object per epoch in `metrics.jsonl`; TensorBoard and Weights & Biases when asked for.

    On resume, rows past the checkpoint's epoch (written after it, before the interruption) are
    dropped, so the file never holds an epoch twice.
    """

    def __init__(self, run_dir: str, cfg, resume_epoch: int | None = None, enabled: bool = True):
        self.path = os.path.join(run_dir, "metrics.jsonl")
        self.enabled = enabled
        self.tb = self.wandb = None
        if not enabled:
            return
        rows = read_rows(self.path) if resume_epoch is not None else []
        with atomic_file(self.path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows if r["epoch"] <= resume_epoch)
        if cfg.run.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise UserError("run.tensorboard is on but tensorboard is not installed: pip install tensorboard") from None
            self.tb = SummaryWriter(os.path.join(run_dir, "tb"))
        if cfg.run.wandb:
            try:
                import wandb
            except ImportError:
                raise UserError("run.wandb is on but wandb is not installed: pip install wandb") from None
            from .config import to_dict

            self.wandb = wandb.init(project=cfg.run.wandb_project, name=cfg.run.name, config=to_dict(cfg),
                                    dir=run_dir, resume="allow")

    def log(self, row: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k != "epoch":
                    self.tb.add_scalar(k, v, row["epoch"])
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log(row, step=row["epoch"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def read_rows(path: str) -> list[dict]:
    """The rows of a metrics.jsonl (a torn last line, from a kill mid-write, is dropped)."""
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for ln in f:
            try:
                rows.append(json.loads(ln))
            except json.JSONDecodeError:
                break
    return rows
