"""Running one unit: its commands as child processes (logged, stopped on request), the training run,
then each point's probe, with the unit's lock and its status.json."""
from __future__ import annotations

import contextlib
import functools
import os
import shlex
import signal
import subprocess
import sys
import threading
import time

from ..errors import UserError
from ..io import FolderLock, write_json_atomic
from .commands import probe_command, tool, train_command
from .plan import Point, Sweep, Unit
from .state import locked, missing_kept, probe_state, train_state


def child_setup(parent_pid: int, ignore_usr2: bool) -> None:
    """In a run's process before it starts: it gets SIGTERM (saves last.pt, exits) when the sweep dies in
    any way, kill -9 included (Linux `prctl(PR_SET_PDEATHSIG)`, as the converter's workers); its own
    session keeps a terminal's Ctrl-C for the sweep, which passes it on once."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the sweep died before prctl took effect
        os._exit(143)
    if ignore_usr2:                 # slurm's warning signal is for the job, not the runs
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def holder(folder: str) -> str:
    """Who holds a folder's lock, as FolderLock wrote it (pid and command)."""
    try:
        with open(os.path.join(folder, ".lock")) as f:
            return f.read(4096).strip() or "another process"
    except OSError:
        return "another process"


class Runner:
    """Runs commands as child processes (their output appended to a log), and stops them on request:
    `stop(sig)` passes the signal on once to every running child (which saves its last.pt and exits)
    and starts no new command."""

    def __init__(self, env: dict | None = None, ignore_usr2: bool = False, torchrun: int = 0):
        self.env = {**os.environ, **(env or {})}
        self.ignore_usr2 = ignore_usr2           # slurm's warning signal is for the job, not the runs
        self.torchrun = torchrun                 # processes per training run (multi-GPU jobs)
        self.procs: set = set()
        self.lock = threading.Lock()
        self.stopping: int | None = None

    def call(self, argv: list[str], log_path: str, cwd: str) -> int:
        if self.stopping:
            return 128 + self.stopping
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        with open(log_path, "a") as log:
            log.write(f"\n== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(argv)}\n")
            log.flush()
            p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
                                 env=self.env, start_new_session=True,
                                 preexec_fn=functools.partial(child_setup, os.getpid(), self.ignore_usr2))  # noqa: PLW1509
            with self.lock:
                self.procs.add(p)
            if self.stopping:                    # a stop that came between the check and the start
                self._signal(p, self.stopping)
            try:
                while True:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        return p.wait(timeout=0.5)
            finally:
                with self.lock:
                    self.procs.discard(p)

    @staticmethod
    def _signal(p, sig):
        with contextlib.suppress(ProcessLookupError, OSError):
            p.send_signal(sig)

    def stop(self, sig: int) -> None:
        self.stopping = self.stopping or sig
        with self.lock:
            procs = list(self.procs)
        for p in procs:
            self._signal(p, sig)

    def wait_children(self, timeout: float) -> None:
        """Wait (polling, safe inside a signal handler) until the children have exited."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                alive = [p for p in self.procs if p.poll() is None]
            if not alive:
                return
            time.sleep(0.2)


def progress(msg: str) -> None:
    with contextlib.suppress(OSError):      # a closed stdout (| head) must not stop the runs
        print(msg, flush=True)


def run_unit(sweep: Sweep, u: Unit, runner: Runner, on_point=None, say=progress) -> str:
    """Train one unit (new or resumed) and measure its points; returns finished | failed | interrupted |
    running (another process holds it). `on_point(point)` is called as each point finishes here."""
    sdir = sweep.state_dir(u)
    try:
        lock = FolderLock(sdir, "sweep unit").acquire()
    except UserError:
        say(f"skip  {u.name}: running in another process")
        return "running"
    status_file = os.path.join(sdir, "status.json")
    try:
        ts = train_state(sweep, u)
        udir = sweep.unit_dir(u)
        gone = missing_kept(sweep, u) if ts != "done" else []
        if gone:
            write_json_atomic(status_file, {"status": "failed", "stage": "train", "time": time.time(),
                                            "missing": gone})
            say(f"failed {u.name}: the run passed epoch {gone[0]} without keeping epoch_{gone[0]}.pt (the grid "
                f"gained that T later); delete {udir} to train it again")
            return "failed"
        trained = ts != "done"
        if trained and locked(udir):  # a run of an earlier sweep that was killed and is still stopping
            say(f"skip  {u.name}: {udir} is still in use by {holder(udir)} (a run left by an earlier sweep); "
                f"wait for it to end (or kill it), then run the same command again")
            return "running"
        if trained:
            say(f"train {u.name} ({'resumed from last.pt' if ts == 'resume' else 'new'}, {u.epochs} epochs)")
            exe = tool("mlpscale-train")
            if runner.torchrun > 1:
                exe = [os.path.join(os.path.dirname(sys.executable), "torchrun"), "--standalone",
                       f"--nproc_per_node={runner.torchrun}", "-m", "mlpscale.train"]
            t0 = time.monotonic()
            rc = runner.call(train_command(sweep, u, ts, exe), os.path.join(udir, "sweep.log"), sweep.cwd)
            outcome = _outcome(rc)
            if outcome != "finished" or train_state(sweep, u) != "done":
                outcome = "failed" if outcome == "finished" else outcome
                write_json_atomic(status_file, {"status": outcome, "stage": "train", "rc": rc,
                                                "log": os.path.join(udir, "sweep.log"), "time": time.time()})
                say(f"{outcome} {u.name} (exit code {rc}; log: {os.path.join(udir, 'sweep.log')})")
                return outcome
            say(f"done  {u.name} in {time.monotonic() - t0:.1f} s")
        failed = None
        for p in u.points:
            probed = sweep.spec.measure.kind == "probe" and probe_state(sweep, u, p) != "done"
            if probed:
                outcome = _probe(sweep, u, p, runner, say)
                if outcome != "finished":
                    failed = outcome
                    write_json_atomic(status_file, {"status": outcome, "stage": f"probe {p.name}", "time": time.time(),
                                                    "log": os.path.join(sweep.probe_dir(p), "sweep.log")})
                    if outcome == "interrupted":
                        return outcome
                    continue                     # the other Ts of the run can still be measured
            if on_point and (trained or probed):
                on_point(p)
        if failed:
            return failed
        with contextlib.suppress(FileNotFoundError):
            os.remove(status_file)
        return "finished"
    finally:
        lock.release()


def _probe(sweep: Sweep, u: Unit, p: Point, runner: Runner, say) -> str:
    """Measure one point (new, resumed, or again when its checkpoint or settings changed)."""
    ps = probe_state(sweep, u, p)
    log = os.path.join(sweep.probe_dir(p), "sweep.log")
    say(f"probe {p.name}" + (" (again: its checkpoint or settings changed)" if ps == "stale" else ""))
    rc = runner.call(probe_command(sweep, u, p, ps, tool("mlpscale-finetune")), log, sweep.cwd)
    outcome = _outcome(rc)
    if outcome == "finished" and probe_state(sweep, u, p) != "done":
        outcome = "failed"
    if outcome != "finished":
        say(f"{outcome} probe {p.name} (exit code {rc}; log: {log})")
    return outcome


def _outcome(rc: int) -> str:
    return "finished" if rc == 0 else "interrupted" if rc in (130, 143, -2, -15) else "failed"
