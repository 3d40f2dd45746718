"""mlpscale: the software for "Scaling MLPs: A Tale of Inductive Bias" (Bachmann et al., NeurIPS 2023).

The command-line tools are the main interface (see the README); the Python names here are loaded on
first use, so `import mlpscale` stays cheap:

    from mlpscale import from_paper_checkpoint   # the authors' released weights -> our MLP, same logits
    from mlpscale import MLP                     # the paper's Standard and Bottleneck MLPs
"""
__version__ = "0.1.0"


def _interrupted_while_starting(signum, frame):
    """Ctrl-C while a command still imports its libraries: one sentence, exit 130, no traceback.
    `errors.cli_entry` puts Python's own handler back once the command's main starts."""
    import os

    os.write(2, b"interrupted while starting; nothing was written\n")
    os._exit(130)


def _guard_start_up() -> None:
    import os
    import signal
    import sys

    if os.path.basename(sys.argv[0] if sys.argv else "").startswith("mlpscale-") and \
            signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupted_while_starting)


_guard_start_up()

_LAZY = {"from_paper_checkpoint": "mlpscale.paper", "MLP": "mlpscale.models"}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mlpscale' has no attribute {name!r}")
