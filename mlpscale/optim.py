"""Optimizers: LION (the paper's), SGD with momentum, AdamW.

LION comes from `lion-pytorch` when it is installed (the field's package, the paper's update:
decoupled decay p *= 1 - lr*wd, sign of the interpolated momentum). `ForeachLion` below is the same
update in a handful of `torch._foreach_*` calls over all parameters at once; it is used where
lion-pytorch is absent (the offline GPU check machine) and is tested against lion-pytorch
step for step.
"""
from __future__ import annotations

import torch

from .errors import UserError

# optimizer state per trainable parameter, in units of the parameter's size (momentum; AdamW's two moments)
STATE_PER_PARAM = {"lion": 1, "sgd": 1, "adamw": 2}


class ForeachLion(torch.optim.Optimizer):
    """LION with foreach kernels: for every parameter p with gradient g and momentum m,
    p *= 1 - lr*wd;  p -= lr * sign(beta1*m + (1-beta1)*g);  m = beta2*m + (1-beta2)*g."""

    def __init__(self, params, lr: float = 1e-4, betas=(0.9, 0.99), weight_decay: float = 0.0):
        if lr <= 0 or not all(0.0 <= b <= 1.0 for b in betas):
            raise ValueError(f"invalid LION settings lr={lr} betas={betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            for p in params:
                if "exp_avg" not in self.state[p]:
                    self.state[p]["exp_avg"] = torch.zeros_like(p)
            moms = [self.state[p]["exp_avg"] for p in params]
            lr, wd, (b1, b2) = group["lr"], group["weight_decay"], group["betas"]
            if wd:
                torch._foreach_mul_(params, 1.0 - lr * wd)
            upd = torch._foreach_mul(moms, b1)
            torch._foreach_add_(upd, grads, alpha=1.0 - b1)
            torch._foreach_sign_(upd)
            torch._foreach_add_(params, upd, alpha=-lr)
            torch._foreach_mul_(moms, b2)
            torch._foreach_add_(moms, grads, alpha=1.0 - b2)
        return loss


def lion_source() -> str:
    """Which LION implementation `build_optimizer` uses here, for reports."""
    try:
        import lion_pytorch.foreach  # noqa: F401 - only whether it imports matters
    except ImportError:
        return "mlpscale.optim.ForeachLion (lion-pytorch not installed)"
    from importlib.metadata import version

    return f"lion-pytorch {version('lion-pytorch')} (foreach)"


def lion_class():
    try:
        from lion_pytorch.foreach import Lion

        return Lion
    except ImportError:
        return ForeachLion


# torch.optim.Optimizer methods wrapped by torch._disable_dynamo: the wrapper imports torch._dynamo on its
# first call, and caches the disabled function on the wrapped one under this attribute
_DYNAMO_WRAPPED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")
_DYNAMO_CACHE = "__dynamo_disable"


def skip_dynamo_import() -> bool:
    """Keep an eager LION run from importing torch._dynamo (its import and what it pulls in are more
    than half of a small run's start-up on a CPU): torch.optim.Optimizer's add_param_group / zero_grad /
    state_dict / load_state_dict are wrapped to run outside dynamo's tracing, and the wrapper imports
    dynamo on its first call. mlpscale compiles only the model, so these methods are never called inside
    a traced frame and the wrapper has nothing to turn off: each wrapped function is given itself as its
    cached "disabled" version. (torch's own SGD and AdamW import dynamo in every step() anyway.)

    Does nothing once dynamo is loaded (a compiled run, or a caller that uses it). Returns whether the
    methods are marked; a torch that wraps them differently keeps its own behaviour (the import)."""
    import sys

    if "torch._dynamo" in sys.modules:
        return False
    marked = False
    for name in _DYNAMO_WRAPPED:
        fn = getattr(getattr(torch.optim.Optimizer, name, None), "__wrapped__", None)
        if fn is not None:
            if getattr(fn, _DYNAMO_CACHE, None) is None:
                setattr(fn, _DYNAMO_CACHE, fn)
            marked = True
    return marked


def build_optimizer(o, params, device: torch.device) -> torch.optim.Optimizer:
    """The optimizer named by an OptimConfig `o`, over a module's trainable parameters or a list of
    parameter groups (dicts with "params" and extra keys such as "lr_mult", which optimizers keep)."""
    skip_dynamo_import()
    if isinstance(params, torch.nn.Module):
        params = [p for p in params.parameters() if p.requires_grad]
    if o.name == "lion":
        return lion_class()(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, foreach=True)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay,
                                 fused=device.type == "cuda")
    raise UserError(f"unknown optimizer optim.name='{o.name}': choose lion, sgd or adamw")
