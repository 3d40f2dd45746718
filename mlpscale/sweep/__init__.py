"""`mlpscale-sweep`: a grid of training runs, each measured, into one results.csv (see cli.py for the
spec and the command). One concern per module: spec (the YAML schema), plan (points and training
units), state (run folders on disk), commands, runner (one unit), launchers (local, submitit/slurm),
results (results.csv), prepare (data preparation), cli."""
from .cli import main
from .launchers import UnitJob
from .plan import Sweep, expand_grid, plan
from .spec import Spec, read_spec
from .state import write_support_files

__all__ = ["Spec", "Sweep", "UnitJob", "expand_grid", "main", "plan", "read_spec", "write_support_files"]
