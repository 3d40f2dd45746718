"""One-command GPU check (`make gpu-check`): every speed figure of mlpscale on one accelerator, in one JSON.

Runs on the H200 target (no network, no registry, Python 3.12, its own torch, no FFCV, no
lion-pytorch) with `PYTHONPATH=.` and the files carried in `wheels/` (`make gpu-wheel`), and on
the CPU at toy sizes (`--toy`, CI) so it never rots. Betons are generated with mlpscale's own
writer (`format.write_arrays` / `format.BetonWriter`), so every figure but the authors' loader
runs without FFCV. Figures, in order of importance, each printed and appended to the JSON as soon
as it is measured (a run cut short still reports what it had):

  env       GPU, torch, CUDA, Python, FFCV and LION status (and where they came from)
  peak      measured bf16 matmul TFLOP/s (8192^3; the MFU denominator)
  step      train-step img/s + MFU, ours (Trainer.train_step: device aug, bf16, compile, foreach LION)
            vs the reference step (fp32 eager, CHW flatten, Python LION), B_12-Wi_1024 at 64px,
            batch 16384, 11,230 classes (the paper: 26k img/s on one RTX A5000)
  e2e       B_12-Wi_1024 end to end and as a bare step, each variant its own process (benchmarks.e2e):
            ours = mlpscale-train's code on a generated 64px raw beton (resident); the authors' FFCV
            CPU-augmenting loader + reference step (needs FFCV; skipped, said so, without it);
            pipeline efficiency = end to end / bare step per recipe
  tiered    2M synthetic 64px JPEGs (a beton written by mlpscale) decoded once by `load_images` into
            two tiers with the device tier forced to 40%, then B_12-Wi_1024 steps through the Trainer:
            decode img/s, training img/s, MFU and loader wait, next to the same images device-resident
  eval      TTA (100 views per image) through `mlpscale.evaluate`, vs N passes of the authors' loader
            and vs the bare forward on views in memory
  step      the remaining Table 5 models
  loader    uint8 img/s from the generated raw beton: StreamLoader / ResidentLoader vs the paper's
            loader and a torch DataLoader (needs FFCV)
A figure that would start after --budget-s is recorded as skipped; torch.compile is probed first and
ours falls back to eager (said so in env.compile_probe) if it cannot compile there.

  PYTHONPATH=. python3 benchmarks/gpu_check.py --out-dir benchmarks/results      # on the GPU
  .venv/bin/python benchmarks/gpu_check.py --toy --out /tmp/gpu_check_toy.json   # CPU, CI
"""
from __future__ import annotations

import argparse
import datetime
import gc
import glob
import os
import sys
import tempfile
import time
import traceback
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

TABLE5 = ["B_12-Wi_1024", "B_6-Wi_1024", "B_12-Wi_512", "B_6-Wi_512", "B_12-Wi_256", "B_6-Wi_256"]
TOY_MODELS = ["B_2-Wi_64", "B_1-Wi_32"]
PAPER = {"name": "paper: B-12/Wi-1024, 64px, one RTX A5000 (Bachmann et al. 2023)", "img_per_s": 26_000,
         "note": "the paper's throughput; its loader (FFCV CPU augmentation) was the limit"}


# --- bringing in what the machine lacks ------------------------------------------------------

def wanted_wheels() -> list[tuple[str, str]]:
    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    return [("ffcv", f"ffcv-*-{py}-*.whl"), ("lion_pytorch", "lion_pytorch-*.whl")]


def bootstrap(wheels: str, site: str, force_no_ffcv: bool, wanted=None) -> dict:
    """Make FFCV and lion-pytorch importable from carried wheels if they are not installed.

    Wheels are unpacked into `site` and put first on sys.path (no pip, nothing installed into the
    system Python). Returns what happened, for the env report."""
    import torch

    from mlpscale.io import atomic_folder

    threads = torch.get_num_threads()  # importing ffcv sets torch's thread count to 1; put it back below
    status = {}
    for mod, pattern in wanted or wanted_wheels():
        if mod == "ffcv" and force_no_ffcv:
            sys.modules["ffcv"] = None  # any `import ffcv` now raises ImportError: exercises the fallback
            status[mod] = "disabled by --no-ffcv"
            continue
        try:
            __import__(mod)
            status[mod] = "installed"
            continue
        except Exception as e:  # noqa: BLE001
            first = f"{type(e).__name__}: {e}"
        found = sorted(glob.glob(os.path.join(wheels, pattern)))
        if not found:
            status[mod] = f"unavailable ({first}; no {pattern} in {wheels}/)"
            continue
        target = os.path.join(site, os.path.basename(found[-1])[:-4])
        if not os.path.isdir(target):
            with atomic_folder(target) as tmp, zipfile.ZipFile(found[-1]) as z:
                z.extractall(tmp)
                for root_, _, files in os.walk(tmp):  # zip keeps no exec bits; shared libraries want them
                    for f in files:
                        if ".so" in f:
                            os.chmod(os.path.join(root_, f), 0o755)
        sys.path.insert(0, target)
        try:
            __import__(mod)
            if mod == "ffcv":
                import ffcv.fields.rgb_image
                import ffcv.loader  # noqa: F401
            status[mod] = f"from {os.path.relpath(found[-1], REPO)} (unpacked to {target})"
        except Exception as e:  # noqa: BLE001
            sys.path.remove(target)
            for name in [m for m in sys.modules if m == mod or m.startswith(mod + ".")]:
                del sys.modules[name]
            if mod == "ffcv":
                sys.modules["ffcv"] = None
            status[mod] = f"unavailable (wheel {os.path.basename(found[-1])} did not load: {type(e).__name__}: {e})"
    torch.set_num_threads(threads)
    return status


# --- the JSON, rewritten after every figure ---------------------------------------------------

class Report:
    def __init__(self, path: str, doc: dict):
        self.path, self.doc = path, doc
        self.save()

    def add(self, entry: dict) -> None:
        self.doc["results"].append(entry)
        self.save()

    def save(self) -> None:
        from mlpscale.io import write_json_atomic

        write_json_atomic(self.path, self.doc)


def measure_matmul_peak(n: int, device, iters: int = 20) -> float:
    """Achieved bf16 (CPU toy: fp32) TFLOP/s of an n x n x n matmul."""
    import torch

    from benchmarks.timing import sync

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        a @ b
    sync(device)
    return 2 * n**3 * iters / (time.perf_counter() - t0) / 1e12


# --- main -------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="JSON path (default: OUT_DIR/gpu_check_<hardware>_<date>.json)")
    p.add_argument("--out-dir", default=os.path.join(REPO, "benchmarks", "results"))
    p.add_argument("--toy", action="store_true", help="tiny sizes (CPU, CI); implied when no CUDA device is visible")
    p.add_argument("--budget-s", type=float, default=430.0,
                   help="start no new figure after this many seconds (the whole check must end within 8 min)")
    p.add_argument("--deadline-s", type=float, default=470.0,
                   help="nor one whose estimated duration (GPU sizes) would end it after this many seconds")
    p.add_argument("--wheels", default=os.path.join(REPO, "wheels"), help="folder with carried wheels")
    p.add_argument("--site", default=os.path.join(tempfile.gettempdir(), "mlpscale-gpu-site"),
                   help="where carried wheels are unpacked")
    p.add_argument("--no-ffcv", action="store_true", help="act as if FFCV were missing (tests the fallback)")
    p.add_argument("--models", help="comma-separated architectures for the step figures (default: Table 5)")
    p.add_argument("--root", help="folder for the generated betons (default: a temporary folder)")
    p.add_argument("--tiered-n", type=int, help="images in the tiered figure's JPEG beton (default 2,000,000; toy 1024)")
    p.add_argument("--e2e-reps", type=int, help="rounds of the e2e processes (default 1: each round is ~4 processes)")
    return p.parse_args(argv)


def sizes_for(toy: bool, models: list[str], ffcv_ok: bool, compile_mode: str, tiered_n: int | None) -> dict:
    """Keyword arguments of Sizes per figure: the real check, or toy sizes that exercise every
    code path on the CPU in seconds."""
    if toy:
        step = dict(res=8, batch=64, num_classes=10, steps=2, reps=2, warmup=1)
        data = dict(res=8, batch=64, num_classes=10, n_train=512, n_test=128)
        e2e = dict(data, arch=models[0], e2e_steps=2, e2e_warmup=1, reps=1, e2e_stream=False)
        tiered = dict(arch=models[0], batch=64, num_classes=10, tiered_res=16, tiered_n=tiered_n or 1024,
                      tiered_device_share=0.4, e2e_steps=2, e2e_warmup=1, reps=1)
        loader = dict(data, batches=4, reps=2, warmup=1, threads=[max(1, len(os.sched_getaffinity(0)))],
                      formats=["raw"])
        tta = dict(data, arch=models[0], tta_crops=4, reps=2, warmup=1)
    else:
        step = dict(res=64, batch=16384, num_classes=11230, steps=5, reps=3, warmup=1)
        # one dataset for e2e, TTA and the loader: 8 steps of batch 16384 in one epoch
        data = dict(res=64, batch=16384, num_classes=11230, n_train=131072, n_test=4096)
        # streaming is the loader figure's; here the processes that give the pipeline efficiency
        e2e = dict(data, arch="B_12-Wi_1024", e2e_steps=6, e2e_warmup=2, reps=1, e2e_stream=False)
        tiered = dict(arch="B_12-Wi_1024", batch=16384, num_classes=11230, tiered_res=64,
                      tiered_n=tiered_n or 2_000_000, tiered_device_share=0.4, e2e_steps=10, e2e_warmup=3, reps=1)
        loader = dict(data, batches=4, reps=3, warmup=1, threads=[len(os.sched_getaffinity(0))], formats=["raw"])
        tta = dict(data, arch="B_12-Wi_1024", batch=4096, tta_crops=100, reps=2, warmup=1)
    for d in (step, e2e, tiered):
        d["compile"] = compile_mode
    return {"step": step, "e2e": e2e, "tiered": tiered, "loader": loader, "tta": tta}


def main(argv=None) -> int:
    a = parse_args(argv)
    t_start = time.perf_counter()
    boot = bootstrap(a.wheels, a.site, a.no_ffcv)

    import torch

    from benchmarks import data as bdata
    from benchmarks.common import Sizes
    from benchmarks.loader import loader_comparisons
    from benchmarks.step import step_comparison
    from benchmarks.e2e import e2e_comparison
    from benchmarks.env import environment, format_environment, hardware_slug
    from benchmarks.schema import SCHEMA
    from benchmarks.tiered import tiered_training
    from benchmarks.tta import tta_comparison
    from mlpscale.optim import lion_source

    cuda = torch.cuda.is_available()
    toy = a.toy or not cuda
    lion = lion_source()
    env = environment()
    env.update({"ffcv_status": boot.get("ffcv"), "lion_status": boot.get("lion_pytorch"), "lion_used": lion,
                "toy": toy})
    date = datetime.date.today().isoformat()
    out = a.out or os.path.join(a.out_dir, f"gpu_check_{hardware_slug(env)}{'_toy' if toy else ''}_{date}.json")
    cmd = "python3 benchmarks/gpu_check.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report = Report(out, {"schema": SCHEMA, "command": cmd.strip(), "quick": toy, "env": env, "results": [],
                          "paper": PAPER})
    print(format_environment(env), flush=True)
    print(f"ffcv: {boot.get('ffcv')}; lion: {lion}; writing {out}", flush=True)
    dev = torch.device("cuda" if cuda else "cpu")
    ffcv_ok = bdata.ffcv_status() is None
    models = a.models.split(",") if a.models else (TOY_MODELS if toy else TABLE5)

    compile_mode = "auto"
    if cuda:  # torch.compile needs triton and a C compiler there; probe once, fall back to eager, say so
        try:
            torch.compile(lambda t: t * 2 + 1)(torch.ones(8, device=dev))
            env["compile_probe"] = "ok"
        except Exception as e:  # noqa: BLE001
            compile_mode = "off"
            env["compile_probe"] = f"failed, ours runs eager: {type(e).__name__}: {e}"[:300]
            print(f"torch.compile unavailable ({env['compile_probe']})", flush=True)
        report.save()
    sz = sizes_for(toy, models, ffcv_ok, compile_mode, a.tiered_n)
    if a.e2e_reps:
        sz["e2e"]["reps"] = a.e2e_reps
    failures = []

    def figure(label: str, fn, est_s: float = 0.0):
        """Run one figure unless the time budget is spent (or, at GPU sizes, its estimated duration
        `est_s` would end it after --deadline-s); record a crash and go on."""
        elapsed = time.perf_counter() - t_start
        est = 0.0 if toy else est_s
        if elapsed > a.budget_s or elapsed + est > a.deadline_s:
            report.add({"suite": label.split()[0], "skipped": f"time budget of {a.budget_s:.0f} s (deadline "
                                                              f"{a.deadline_s:.0f} s, ~{est:.0f} s needed) spent "
                                                              f"before '{label}' ({elapsed:.0f} s elapsed)"})
            print(f"== {label}: skipped (time budget)", flush=True)
            return
        print(f"== {label} (t={elapsed:.0f} s)", flush=True)
        try:
            for entry in fn():
                entry["elapsed_s"] = round(time.perf_counter() - t_start, 1)
                report.add(entry)
        except Exception as e:  # noqa: BLE001 - keep going: the other figures still count
            traceback.print_exc()
            failures.append(label)
            report.add({"suite": label.split()[0], "error": f"{label}: {type(e).__name__}: {e}"[:2000]})
        finally:
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()

    peak = {}

    def do_peak():
        n = 256 if toy else 8192
        tf = measure_matmul_peak(n, dev)
        peak["flops"] = tf * 1e12
        print(f"  {'bf16' if cuda else 'fp32'} matmul {n}^3: {tf:.1f} TFLOP/s", flush=True)
        return [{"suite": "peak", "name": f"{'bf16' if cuda else 'fp32'} matmul {n}^3", "value": tf,
                 "unit": "TFLOP/s", "timer": "20 matmuls after 3 warm-up, closed by a device sync"}]

    def do_step(arch):
        def run():
            s = Sizes(arch=arch, **sz["step"])
            with tempfile.TemporaryDirectory(prefix="mlpscale-gpu-run-") as run_dir:
                return [step_comparison(s, run_dir, peak_flops=peak.get("flops"))]
        return run

    root_ctx = tempfile.TemporaryDirectory(prefix="mlpscale-gpu-data-") if not a.root else None
    root = a.root or root_ctx.name

    def do_e2e():
        e = e2e_comparison(Sizes(**sz["e2e"]), root)
        if peak.get("flops"):
            from mlpscale.models import MLP

            flops = MLP(e["config"]["arch"], e["config"]["res"], e["config"]["num_classes"]).train_flops_per_image()
            e["peak_tflops"] = peak["flops"] / 1e12
            e["mfu"] = {k: v["median"] * flops / peak["flops"] for k, v in e["variants"].items() if "median" in v}
            print("  MFU: " + ", ".join(f"{k} {v:.1%}" for k, v in e["mfu"].items()), flush=True)
        return [e]

    def do_tiered():
        return tiered_training(Sizes(**sz["tiered"]), root, peak_flops=peak.get("flops"))

    def do_loader():
        if not ffcv_ok:
            return [{"suite": "loader", "skipped": f"FFCV cannot load here ({boot.get('ffcv')}); "
                                                   f"the e2e, tiered and eval figures use mlpscale's own reader"}]
        return loader_comparisons(Sizes(**sz["loader"]), root, "raw")

    def do_tta():
        return [tta_comparison(Sizes(**sz["tta"]), root, reference=ffcv_ok)]

    def do_compile():
        # dynamo's counters on the trainer's path (epochs, evaluations, TTA, resume), as the CPU test counts them
        from benchmarks.compile_check import compile_run

        with tempfile.TemporaryDirectory(prefix="mlpscale-gpu-compile-") as d:
            r = compile_run(os.path.join(d, "data"), os.path.join(d, "runs"), str(dev))
        print(f"  dynamo after resume: {r['after_resume']}", flush=True)
        return [{"suite": "compile", "name": "dynamo frames compiled (2 epochs, evals, TTA, resume)",
                 "value": r["after_resume"]["frames"], "unit": "frames", "expected": 1, **r}]

    try:
        # estimated seconds at GPU sizes (compile, generated betons, FFCV's numba compile included)
        figure("peak", do_peak)
        figure(f"step {models[0]}", do_step(models[0]), 120)
        figure("e2e", do_e2e, 150)
        figure("tiered", do_tiered, 180)
        figure("eval TTA", do_tta, 75)
        for arch in models[1:]:
            figure(f"step {arch}", do_step(arch), 45)
        figure("loader", do_loader, 60)
        if not toy and compile_mode != "off":  # on the CPU, tests/test_compile_path.py checks the same
            figure("compile", do_compile, 90)
    finally:
        if root_ctx is not None:
            root_ctx.cleanup()
    total = time.perf_counter() - t_start
    report.doc["total_s"] = round(total, 1)
    report.save()
    print(f"done in {total:.0f} s; results in {out}" + (f"; failed: {', '.join(failures)}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: with FFCV/numba threads and DataLoader workers alive it intermittently
    # aborts ("terminate called without an active exception", SIGABRT) after all results are written.
    os._exit(code)
