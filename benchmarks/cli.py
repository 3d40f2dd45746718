"""`python -m benchmarks SUITE... [--quick] [--json PATH] [--record] [--min-efficiency F]`: ours vs baseline.

Suites: convert, startup, loader, augment, step, e2e, eval, tiered, or `all`. Every figure is a median over
repetitions run alternately with its baselines after warm-up, printed with its spread and the
ratio ours/baseline; e2e and eval also print the pipeline efficiency (end to end / bare step) of
each recipe. `--quick` uses CI sizes (all suites in under 3 minutes on 2 CPU cores); without it the
sizes are those of the recorded CPU results (benchmarks/README.md).

The gate: when ours' e2e pipeline efficiency is below --min-efficiency (default 0.7 with --quick,
off otherwise) the command prints one line saying so and exits with status 3 (a suite that
crashed: status 1).

  python -m benchmarks step --quick
  python -m benchmarks all --quick --json /tmp/bench.json      # what CI runs
  python -m benchmarks e2e --record            # writes benchmarks/results/e2e_<hardware>_<date>.json
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import sys
import tempfile
import time
import traceback

from mlpscale.errors import UserError, cli_entry
from mlpscale.io import write_json_atomic

from . import augment, convert, e2e, loader, startup, step, tiered, tta
from .common import REPO, Sizes
from .e2e import gate_failures
from .env import environment, format_environment, hardware_slug, run_command
from .schema import SCHEMA, validate

# suite name -> run(sizes, quick, log, inject) -> result entries; `all` runs them in this order
SUITES = {
    "convert": lambda s, quick, log, inject: convert.suite_convert(s, quick, log),
    "startup": lambda s, quick, log, inject: startup.suite_startup(2 if quick else s.reps, log),
    "loader": lambda s, quick, log, inject: loader.suite_loader(s, log),
    "augment": lambda s, quick, log, inject: augment.suite_augment(s, log),
    "step": lambda s, quick, log, inject: step.suite_step(s, log),
    "e2e": lambda s, quick, log, inject: e2e.suite_e2e(s, log, inject),
    "eval": lambda s, quick, log, inject: tta.suite_eval(s, log),
    "tiered": lambda s, quick, log, inject: tiered.suite_tiered(s, log),
}


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from None


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suites", nargs="+", metavar="SUITE", help=f"one or more of {', '.join(SUITES)}, or all")
    p.add_argument("--quick", action="store_true", help="CI sizes (seconds per suite)")
    p.add_argument("--json", metavar="PATH", help="write all results to this file (rewritten after each suite)")
    p.add_argument("--record", action="store_true",
                   help="also write benchmarks/results/<suite>_<hardware>_<date>.json per suite")
    g = p.add_argument_group("sizes (default: --quick's or the recorded run's)")
    g.add_argument("--arch", help="model, paper naming (default B_6-Wi_512; quick B_2-Wi_256)")
    g.add_argument("--res", type=int, help="image resolution (default 32)")
    g.add_argument("--batch", type=int, help="batch size (default 512; quick 256)")
    g.add_argument("--classes", type=int, dest="num_classes", help="number of classes (default 10)")
    g.add_argument("--n-train", type=int, help="images in the generated training beton (default 50000)")
    g.add_argument("--precision", choices=["auto", "bf16", "fp32"],
                   help="ours' precision (default auto: bf16 on CUDA, fp32 on CPU)")
    g.add_argument("--compile", choices=["auto", "on", "off"], help="ours' torch.compile (default auto: CUDA only)")
    g.add_argument("--steps", type=int, help="optimizer steps per timed repetition")
    g.add_argument("--batches", type=int, help="loader/augment batches per timed repetition")
    g.add_argument("--reps", type=int, help="timed repetitions per variant")
    g.add_argument("--warmup", type=int, help="untimed repetitions per variant first")
    g.add_argument("--threads", type=_ints, help="FFCV thread counts for the loader suite, e.g. 1,2")
    g.add_argument("--formats", type=lambda t: t.split(","), help="beton formats for the loader suite: raw,jpg")
    g.add_argument("--tta-crops", type=int, help="views per image in the eval suite")
    g.add_argument("--e2e-arch", help="model of the e2e suite (default: --arch; quick B_6-Wi_512)")
    g.add_argument("--e2e-steps", type=int, help="timed optimizer steps per e2e process (default 10; quick 6)")
    g.add_argument("--e2e-warmup", type=int, help="untimed steps first in each e2e process (default 3; quick 2)")
    g.add_argument("--e2e-reps", type=int, help="rounds of e2e processes (default: --reps; quick 2)")
    g.add_argument("--no-e2e-baseline", dest="e2e_baseline", action="store_false", default=None,
                   help="e2e: time ours only, not the authors' recipe (whose FFCV loader compiles for ~20 s "
                        "in each of its processes on a CPU)")
    g.add_argument("--tiered-n", type=int, help="images in the tiered suite's JPEG beton (default 16384)")
    g.add_argument("--tiered-res", type=int, help="resolution of the tiered suite's beton (default 64)")
    g.add_argument("--tiered-device-share", type=float, help="share of rows in the device tier (default 0.5)")
    g.add_argument("--device", help="auto | cpu | cuda")
    g.add_argument("--root", help="folder for generated betons (kept, reused); default a temporary folder")
    p.add_argument("--min-efficiency", type=float, metavar="F",
                   help="fail (exit 3) when ours' e2e pipeline efficiency is below F (default: 0.7 with --quick)")
    p.add_argument("--inject", default=os.environ.get("MLPSCALE_BENCH_INJECT", ""), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.min_efficiency is None:
        a.min_efficiency = 0.7 if a.quick else 0.0
    names = list(SUITES) if "all" in a.suites else a.suites
    bad = [n for n in names if n not in SUITES]
    if bad:
        raise UserError(f"unknown suite {', '.join(bad)}: choose from {', '.join(SUITES)} or all")
    s = Sizes.quick() if a.quick else Sizes()
    for k in ("arch", "res", "batch", "num_classes", "n_train", "precision", "compile", "steps", "batches", "reps",
              "warmup", "threads", "formats", "tta_crops", "e2e_arch", "e2e_steps", "e2e_warmup", "e2e_reps",
              "e2e_baseline", "tiered_n", "tiered_res", "tiered_device_share", "device", "root"):
        v = getattr(a, k)
        if v is not None:
            setattr(s, k, v)
    return a, names, s


@cli_entry
def main(argv=None):
    a, names, s = parse_args(argv)
    env = environment()
    print(format_environment(env), flush=True)
    doc = {"schema": SCHEMA, "command": run_command() if argv is None else "python -m benchmarks " + " ".join(argv),
           "quick": a.quick, "sizes": dict(vars(s)), "min_efficiency": a.min_efficiency or None, "env": env,
           "results": []}
    failed = []
    date = datetime.date.today().isoformat()
    with contextlib.ExitStack() as stack:
        if not s.root:  # one folder for the whole run: suites share generated betons (and FFCV's compiled loaders)
            s.root = stack.enter_context(tempfile.TemporaryDirectory(prefix="mlpscale-bench-"))
        failed = _run_all(a, names, s, env, doc, date)
    if a.json:
        print(f"results in {a.json}")
    code = 0
    for e in doc["results"]:
        eff = e.get("pipeline_efficiency", {}).get("ours") if e.get("suite") == "e2e" else None
        if eff is not None:
            verdict = (f"{'ok' if eff >= a.min_efficiency else 'FAIL'} (min {a.min_efficiency:.2f})"
                       if a.min_efficiency else "(no minimum set)")
            print(f"pipeline efficiency of ours (e2e / bare step): {eff:.2f} {verdict}", flush=True)
    gate = gate_failures(doc["results"], a.min_efficiency)
    if gate:
        print("error: " + "; ".join(gate), file=sys.stderr)
        code = 3
    if failed:
        print(f"error: suite(s) {', '.join(failed)} crashed (traceback above)", file=sys.stderr)
        code = 1
    if argv is None:  # run as a program (not from tests): skip interpreter teardown, which with FFCV/numba
        sys.stdout.flush()  # threads and DataLoader workers alive can intermittently abort after all is written
        sys.stderr.flush()
        os._exit(code)
    if code:
        sys.exit(code)


def _run_all(a, names, s, env, doc, date) -> list[str]:
    failed = []
    for name in names:
        print(f"== suite {name}", flush=True)
        t0 = time.perf_counter()
        try:
            entries = SUITES[name](s, a.quick, lambda m: print(m, flush=True), a.inject)
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001 - record the crash, run the other suites, exit non-zero
            traceback.print_exc()
            entries = [{"suite": name, "error": f"{type(e).__name__}: {e}"[:2000]}]
            failed.append(name)
        print(f"== suite {name} took {time.perf_counter() - t0:.0f} s", flush=True)
        for e in entries:
            e.setdefault("suite_s", round(time.perf_counter() - t0, 1))
            if "skipped" in e:
                print(f"[{name}] skipped: {e['skipped']}", flush=True)
        doc["results"] += entries
        validate(doc)
        if a.json:
            write_json_atomic(a.json, doc)
        if a.record:
            rec = {**doc, "results": entries}
            path = os.path.join(REPO, "benchmarks", "results", f"{name}_{hardware_slug(env)}_{date}.json")
            write_json_atomic(path, rec)
            print(f"recorded {os.path.relpath(path, REPO)}", flush=True)
    return failed


if __name__ == "__main__":
    main()
