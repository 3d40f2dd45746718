"""Launchers: the local one (child processes, `jobs` at a time), submitit job arrays (slurm, or submitit's
local executor), and shell lines for any other scheduler."""
from __future__ import annotations

import concurrent.futures
import json
import os
import shlex
import shutil
import signal
import sys
import threading
import time

from ..errors import UserError
from .commands import unit_commands
from .plan import Sweep, Unit
from .results import write_results
from .runner import Runner, progress, run_unit


def run_local(sweep: Sweep, units: list[Unit], jobs: int, threads: int | None) -> dict:
    """Units in this process's children, `jobs` at a time. Returns {unit: outcome}."""
    env = {}
    n_threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    if jobs > 1 or threads:
        env = {k: str(n_threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k not in os.environ}
    runner = Runner(env)
    say_lock = threading.Lock()

    def say(msg):
        with say_lock:
            progress(msg)

    def point_done(p):
        write_results(sweep)

    caught = []

    def on_signal(signum, frame):
        if not caught:
            say(f"stopping ({signal.Signals(signum).name}): the running runs save their last.pt; run the same "
                f"command again to continue")
        caught.append(signum)
        # passed on each time: a second one stops the runs at once; a closed terminal (SIGHUP) as SIGTERM
        runner.stop(signal.SIGTERM if signum == signal.SIGHUP else signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    outcomes = {}
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
            futs = {ex.submit(run_unit, sweep, u, runner, point_done, say): u for u in units}
            pending = set(futs)
            while pending:
                done, pending = concurrent.futures.wait(pending, timeout=0.5)
                for f in done:
                    outcomes[futs[f].name] = f.result()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if caught:
        outcomes["__signal__"] = caught[0]
    return outcomes


class UnitJob:
    """The function each submitit job runs: train one unit, measure its points, rewrite results.csv.

    Checkpointable: on preemption or timeout submitit calls `checkpoint`, which stops the running
    command with SIGTERM (it saves last.pt after its current step), waits for it, and has the same
    job requeued; the requeued job resumes from last.pt."""

    def __init__(self, sweep: Sweep, torchrun: int = 0):
        self.sweep, self.torchrun = sweep, torchrun
        self.runner = None

    def __getstate__(self):
        return {"sweep": self.sweep, "torchrun": self.torchrun, "runner": None}

    def __call__(self, unit_name: str) -> str:
        os.chdir(self.sweep.cwd)
        self.runner = Runner(ignore_usr2=True, torchrun=self.torchrun)
        u = self.sweep.unit(unit_name)
        outcome = run_unit(self.sweep, u, self.runner, on_point=lambda p: write_results(self.sweep))
        write_results(self.sweep)
        return outcome

    def checkpoint(self, unit_name: str):
        from submitit.helpers import DelayedSubmission

        if self.runner is not None:
            self.runner.stop(signal.SIGTERM)
            self.runner.wait_children(60)
        return DelayedSubmission(UnitJob(self.sweep, self.torchrun), unit_name)


def _submitit():
    try:
        import submitit
    except ImportError:
        raise UserError("--launcher slurm needs submitit, an optional dependency: pip install submitit") from None
    return submitit


def submit_jobs(sweep: Sweep, units: list[Unit], cluster: str) -> list:
    """A submitit job array (cluster slurm or local), one UnitJob per unit; returns submitit's jobs."""
    submitit = _submitit()
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise UserError("--launcher slurm needs slurm's sbatch on this machine; run on the cluster's login node, "
                        "or use --launcher local, or --print-commands for another scheduler")
    s = sweep.spec.slurm
    folder = os.path.join(sweep.dir, "submitit", "%j")
    ex = submitit.AutoExecutor(folder=folder, cluster=cluster, slurm_max_num_timeout=s.max_num_timeout)
    params = {"name": f"sweep-{sweep.spec.name}", "timeout_min": s.timeout_min, "mem_gb": s.mem_gb,
              "cpus_per_task": s.cpus_per_task, "gpus_per_node": s.gpus_per_node, "nodes": 1,
              "tasks_per_node": 1}
    if cluster == "slurm":
        params.update({f"slurm_{k}": getattr(s, k) for k in ("partition", "account", "qos", "constraint",
                                                             "array_parallelism")})
        if s.setup:
            params["slurm_setup"] = list(s.setup)
        params["slurm_signal_delay_s"] = s.signal_delay_s
        if s.additional:
            params["slurm_additional_parameters"] = dict(s.additional)
    try:
        ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
    except (NameError, AssertionError, ValueError) as e:
        raise UserError(f"{sweep.spec.path}: slurm: submitit refused the resources ({str(e).splitlines()[0]})") from None
    job = UnitJob(sweep, torchrun=s.gpus_per_node or 0 if cluster == "slurm" else 0)
    jobs = ex.map_array(job, [u.name for u in units])
    with open(os.path.join(sweep.dir, "submitit", "jobs.jsonl"), "a") as f:
        f.write(json.dumps({"time": time.time(), "cluster": cluster,
                            "jobs": {u.name: j.job_id for u, j in zip(units, jobs)}}) + "\n")
    progress(f"submitted {len(jobs)} job(s) to {cluster} ({jobs[0].job_id.split('_')[0] if jobs else '-'}); logs in "
         f"{os.path.dirname(folder)}; results.csv is rewritten as points finish")
    return jobs


def submit(sweep: Sweep, units: list[Unit], cluster: str, wait: bool) -> dict:
    """Submit the units; with `wait`, wait for every job and return {unit: outcome}."""
    jobs = submit_jobs(sweep, units, cluster)
    if not wait:
        return {}
    out = {}
    for u, j in zip(units, jobs):
        try:
            out[u.name] = j.result()
        except Exception as e:  # noqa: BLE001 - a job that died: its log says why
            out[u.name] = "failed"
            progress(f"failed {u.name}: job {j.job_id} ended with {type(e).__name__} (log: {j.paths.stderr})")
    return out


def print_commands(sweep: Sweep, units: list[Unit]) -> None:
    """One shell line per unit: cd to the working folder, train, then probe each point."""
    for u in units:
        cmds = unit_commands(sweep, u)
        if cmds:
            out_line(" && ".join([f"cd {shlex.quote(sweep.cwd)}"] + [shlex.join(c) for c in cmds]))


def out_line(line: str) -> None:
    """A line of a listing on stdout; a reader that stopped early (| head) ends the listing quietly."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
