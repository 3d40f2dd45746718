"""`mlpscale-sweep SPEC [--launcher local|slurm|submitit-local] [--jobs N] [--out DIR] [--set KEY=VALUE]
[--prepare] [--print-commands | --dry-run | --collect] [--wait]`: a grid of training runs, each measured, into one
results.csv for `mlpscale-scaling` (the paper's scaling study, Section 4).

A spec (YAML; every key checked when read, see mlpscale/sweep/spec.py):

    base: bmlp6.yaml                 # training config: a path, or a bare name in configs/
    set: {optim.lr: 1.0e-5}          # overrides for every point (also a list of "a.b=v" strings)
    grid:                            # dotted config fields -> values; their product is the set of points
      model.arch: [B_6-Wi_256, B_12-Wi_256]
      data.n_train: [100000, 1000000]
      train.epochs: [50, 100]
    measure: {probe: {config: FILE, set: {data.dataset: cifar100}, mode: linear}}   # or: test

Each point has a stable, readable name built from its grid fields in grid order, the epochs last:
`B_6-Wi_256__n100000__e50` (prefixes: plan.NAME_PREFIX, or the spec's `names:`). `grid` may also be a
list of such mappings (their products are concatenated).

SWEEP_DIR (`--out`, default runs/sweeps/<spec name>) holds:
    spec.yaml            the resolved spec and its points
    points/<unit>/       training run folders (mlpscale-train), one per training run (see reuse below)
    probes/<point>/      probe run folders (mlpscale-finetune), one per point with `measure: probe`
    state/<unit>/        a lock (the unit is running somewhere) and status.json (the last failure)
    results.csv          arch,params,n_train,epochs,compute_pflops,error (a fraction, 1 - top-1),
                         name,test_top1,probe_top1,status,run_dir,probe_dir and the other grid fields;
                         rewritten atomically whenever a point finishes

Re-running the same command finishes a half-done sweep: finished points are skipped (training: its
summary.json says finished for the requested epochs; probe: its summary.json says finished, from that
checkpoint, written after it), a run with a last.pt continues with `--resume`, failed and interrupted
ones are retried (a failed probe does not stop the other Ts of its run). A point folder whose
config.yaml differs from what the spec asks for (beyond the epoch count and speed knobs) stops the
sweep before anything runs: the spec changed under it.

Reuse across epochs. When the grid varies train.epochs and the run's learning rate does not depend on
the run length (`optim.schedule: constant`; `optim.warmup_epochs` counts epochs, not a fraction of the
total, so any warmup is fine), the points that differ only in T share one training run to max(T) that
keeps `epoch_<T>.pt` for every T of the grid (`train.keep_epochs` lists them), and each T is probed from
its kept checkpoint. This is exact, not an approximation: the data order, augmentation and learning rate of step s
are pure functions of (seed, epoch, step), so the weights after T epochs of the long run are bit-identical to
those of a separate T-epoch run (tests/integration/test_sweep.py checks it). A cosine schedule depends on the total
length, so there each T trains separately (one note says so); `reuse_epochs: off` asks for that too.
The compute of the point at T is the paper's C at T: paper_flops_per_forward x 3 x N x T.

Launchers:
  local           each run as a subprocess `mlpscale-train` / `mlpscale-finetune` (the console scripts
                  next to sys.executable), one unit after another or `--jobs N` at a time; each job
                  gets cores/N threads. Ctrl-C (or SIGTERM) is passed on once: the runs save last.pt,
                  and the same command continues them.
  slurm           a submitit job array (`slurm:` holds the resources), one job per training unit: it
                  trains, then probes, then rewrites results.csv. Jobs are checkpointable: on
                  preemption or timeout the running command is stopped with SIGTERM (it saves
                  last.pt), and the job is requeued and resumes. submitit is optional: pip install submitit.
  submitit-local  the same jobs through submitit's LocalExecutor on this machine (testing the job path).
  --print-commands  one shell line per unit (`mlpscale-train ... && mlpscale-finetune ...`) for any
                  other scheduler; nothing runs.

Data preparation: `--prepare` first runs the spec's `prepare:` steps (a command, or a Python function
`module:function` with `args`), each skipped when the path in its `creates` exists. `--dry-run` checks
the spec and lists what would run; `--collect` only rebuilds results.csv from the folders.

Exit codes: 0 every point finished (slurm without --wait: the jobs were submitted), 1 some point failed
(its log is named), 2 a user error, 130 / 143 interrupted (the runs saved their last.pt).
"""
from __future__ import annotations

import argparse
import sys
import time

from .. import cli
from ..errors import UserError, cli_entry
from .launchers import out_line, print_commands, run_local, submit
from .plan import Sweep, Unit, plan
from .prepare import missing_prepared, prepare
from .results import report, write_results
from .spec import read_spec
from .state import check_folders, probe_state, train_state, write_support_files


def _dry_run(sweep: Sweep, units: list[Unit]) -> None:
    for u in units:
        ts = train_state(sweep, u)
        what = {"done": "trained", "resume": "resume from last.pt", "new": "train"}[ts]
        keeps = ", keeps " + ",".join(str(p.epochs) for p in u.points) if u.reuse else ""
        line = f"{u.name}: {what} ({u.epochs} epochs{keeps})"
        if sweep.spec.measure.kind == "probe":
            todo = [p.name for p in u.points if ts != "done" or probe_state(sweep, u, p) != "done"]
            line += f"; probes to run: {len(todo)} of {len(u.points)}"
        out_line(line)


WHAT = "Run a grid of training runs (and a linear probe per point) into one results.csv for mlpscale-scaling."
EXAMPLE = "mlpscale-sweep mini_cpu --prepare"
DETAILS = """\
A spec (YAML) names a base training config, overrides for every point (set:), a grid of config fields
whose product is the set of points, and what to measure (test, or probe: a linear-probe config):

    base: bmlp6.yaml
    set: {optim.lr: 1.0e-5}
    grid: {model.arch: [B_6-Wi_256, B_12-Wi_256], data.n_train: [100000, 1000000], train.epochs: [50, 100]}
    measure: {probe: {config: probe.yaml, set: {data.dataset: cifar100}, mode: linear}}

Points get stable names from their grid values (B_6-Wi_256__n100000__e50). SWEEP_DIR (--out, default
runs/sweeps/<spec name>) holds spec.yaml, points/<name>/ (training runs), probes/<name>/, and
results.csv (arch, params, n_train, epochs, compute_pflops, error, ...). Running the same command again
finishes a half-done sweep: finished points are skipped, interrupted ones resume, failed ones are retried.
With a constant learning rate one run to the largest epoch count keeps a checkpoint at every smaller
one and probes it (exact: data order, augmentation and lr depend on the step only).

Exit codes: 0 every point finished (slurm without --wait: submitted), 1 some point failed (its log is
named), 2 a user error, 130 / 143 interrupted (the runs saved their last.pt)."""


def build_parser() -> argparse.ArgumentParser:
    p = cli.command_parser("mlpscale-sweep", WHAT, EXAMPLE, DETAILS)
    p.add_argument("spec", metavar="SPEC",
                   help="sweep spec: a YAML file, or a bare name of a shipped spec (mini_cpu, paper_in21k.yaml)")
    p.add_argument("--launcher", choices=("local", "slurm", "submitit-local"), default="local",
                   help="local: subprocesses here (default); slurm: a submitit job array; submitit-local: "
                        "the same jobs through submitit on this machine")
    cli.add(p, "--jobs", "with --launcher local (default: the spec's local.jobs, or 1)")
    cli.add(p, "--out", "the sweep folder SWEEP_DIR (default: runs/sweeps/<spec name>)")
    cli.add(p, "--set", "of every point's training config, after the spec's set:")
    p.add_argument("--prepare", action="store_true", help="first run the spec's data-preparation steps")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--print-commands", action="store_true",
                      help="print one shell line per unit still to do (train && probe ...) and exit")
    mode.add_argument("--dry-run", action="store_true", help="check the spec, show what would run, and exit")
    mode.add_argument("--collect", action="store_true", help="only rewrite results.csv from the run folders")
    p.add_argument("--wait", action="store_true", help="slurm: wait for the jobs and report them")
    return p


@cli_entry
def main(argv=None):
    a = build_parser().parse_args(argv)
    if a.jobs is not None and a.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {a.jobs}")
    if a.wait and a.launcher != "slurm":
        raise UserError(f"--wait applies to --launcher slurm only (--launcher {a.launcher} always waits)")
    if a.jobs is not None and a.launcher != "local":
        raise UserError(f"--jobs applies to --launcher local only; the {a.launcher} launcher runs one job per unit")
    spec = read_spec(a.spec, a.set)
    sweep = plan(spec, a.out)
    check_folders(sweep)
    for n in sweep.notes:
        print(n, file=sys.stderr)
    units = sweep.units
    if a.print_commands:
        write_support_files(sweep)        # the probe commands read SWEEP_DIR/probe.yaml
        print_commands(sweep, units)
        return
    if a.prepare:
        prepare(spec)
    if a.dry_run:
        _dry_run(sweep, units)
        return
    write_support_files(sweep)
    if a.collect:
        rows = write_results(sweep)
        report(sweep, rows)
        return
    missing = missing_prepared(spec)
    if missing:
        raise UserError(f"{missing[0]} does not exist yet; prepare the data first: mlpscale-sweep {a.spec} --prepare")
    write_results(sweep)
    t0 = time.monotonic()
    if a.launcher == "local":
        jobs = a.jobs or spec.local.jobs or 1
        outcomes = run_local(sweep, units, jobs, spec.local.threads)
    else:
        outcomes = submit(sweep, units, "slurm" if a.launcher == "slurm" else "local",
                          wait=a.wait or a.launcher == "submitit-local")
        if a.launcher == "slurm" and not a.wait:
            return
    rows = write_results(sweep)
    report(sweep, rows, time.monotonic() - t0)
    sig = outcomes.pop("__signal__", None)
    if sig:
        sys.exit(128 + sig)
    bad = [n for n, o in outcomes.items() if o in ("failed", "interrupted")]
    if bad:
        print(f"error: {len(bad)} training unit(s) did not finish ({', '.join(bad[:3])}"
              f"{', ...' if len(bad) > 3 else ''}); their logs are named above; run the same command again to "
              f"retry them", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
