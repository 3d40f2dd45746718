"""Run logging: metrics.jsonl always; TensorBoard and Weights & Biases when asked for."""
from __future__ import annotations

import json
import os

from .errors import UserError


class MetricsLog:
    """One JSON object per epoch in `metrics.jsonl`; on resume, lines past the checkpoint are dropped."""

    def __init__(self, run_dir: str, cfg, resume_epoch: int | None = None, enabled: bool = True):
        self.path = os.path.join(run_dir, "metrics.jsonl")
        self.enabled = enabled
        self.tb = self.wandb = None
        if not enabled:
            return
        if resume_epoch is not None and os.path.exists(self.path):
            with open(self.path) as f:
                keep = [ln for ln in f if ln.strip() and json.loads(ln)["epoch"] <= resume_epoch]
            with open(self.path + ".tmp", "w") as f:
                f.writelines(keep)
            os.replace(self.path + ".tmp", self.path)
        elif resume_epoch is None and os.path.exists(self.path):
            os.remove(self.path)
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
