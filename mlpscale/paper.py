"""Import the authors' released checkpoints into mlpscale models (`mlpscale-import-paper`).

Which checkpoints exist (the paper's released checkpoints; the authors' `utils/download.py`):
B_6-Wi_512, B_12-Wi_512, B_6-Wi_1024 and B_12-Wi_1024, all B-MLPs pre-trained on ImageNet-21k at
64x64 (11,230 classes), plus fine-tuned versions (`..._in21k_cifar10`, `_cifar100`, `_imagenet`:
10, 100, 1000 classes). Each download is `torch.save(model.state_dict())` of their module (no wrapper,
no extension, e.g. `B-12_Wi-1024_res_64_imagenet21_epochs_800_weights`) next to a JSON `config.txt`
(model, architecture, crop_resolution, normalization). The authors trained without wrappers, but a
file from DDP or `torch.compile` carries `module.` / `_orig_mod.` prefixes; both are stripped, and a
dict holding the state under "model" / "state_dict" / "model_state_dict" is unwrapped.

Name mapping (theirs -> ours; `{w}` = weight and bias):

    BottleneckMLP (B_<depth>-Wi_<width>)        ours (mlpscale.models.MLP)
      linear_in.{w}                             linear_in.{w}        columns permuted, see below
      layernorms.{i}.{w}                        blocks.{i}.norm.{w}  (+ running stats for batch norm)
      blocks.{i}.block.0.{w}   (expand)         blocks.{i}.expand.{w}
      blocks.{i}.block.2.{w}   (contract)       blocks.{i}.contract.{w}
      linear_out.{w}                            linear_out.{w}
    StandardMLP (S_<depth>-Wi_<width>: depth-1 layers; the paper's listing spells `layer_norms`)
      linear_in.{w}                             linear_in.{w}        columns permuted
      layernorms.{i}.{w}                        blocks.{i}.norm.{w}
      layers.{i}.{w}                            blocks.{i}.linear.{w}
      linear_out.{w}                            linear_out.{w}

Both compute the same functions: B: `z = z + W_c GELU(W_e LN(z))` per block; S: `z = W GELU(LN(z))`
per layer; no final norm; a linear head.

Flatten order: their loader yields NCHW batches flattened as `x.reshape(B, 3*H*W)`, so input column
`c*H*W + h*W + w` holds pixel (h, w) of channel c; ours flatten NHWC, column `h*W*C + w*C + c`. The first
layer's weight, (width, C*H*W), is permuted once:

    W_ours = W_theirs.reshape(width, C, H, W).permute(0, 2, 3, 1).reshape(width, H*W*C)

Nothing else changes (the bias and every later layer see the same hidden vector). Inputs are
normalised as theirs: `(x - mean) / std` on the 0..255 scale with the dataset's constants
(ImageNet's for ImageNet-21k, `data_utils/data_stats.py`), stored in the checkpoint's `model_meta`.

Files are read with `torch.load(weights_only=True)`: a file with code in it is refused unrun.

What a file is, from its name (`release_from_name`): the authors name every release
`B-<depth>_Wi-<width>_res_<res>_<dataset>_epochs_<epochs>` (`utils/download.py`), e.g.
`B-12_Wi-1024_res_64_imagenet21_epochs_800` (pre-trained on ImageNet-21k, 11,230 classes) or
`B-12_Wi-1024_res_64_cifar10_epochs_20` (that model fine-tuned on CIFAR-10 for 20 epochs). The
architecture, resolution, classes, dataset and epochs are read from it; the command-line flags are
needed only where a file was renamed. A fine-tuned release also carries the crops it was fine-tuned
with (the README's command: scale (0.4, 1), ratio (1, 1) + flip), so TTA on it draws those.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import warnings

import torch

from . import checkpoint, cli, config, datasets, io
from .errors import UserError, cli_entry, int_range
from .models import MLP, ArchSpec, parse_arch

PREFIXES = ("module.", "_orig_mod.")              # DDP, torch.compile
WRAPPER_KEYS = ("model", "state_dict", "model_state_dict", "net")
NAMES = {"imagenet21": "imagenet21k", "imagenet": "imagenet1k"}  # the authors' dataset names -> ours

# torch.save's zip container, and the legacy format's pickled magic number
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8")
_B_BLOCK = re.compile(r"^blocks\.(\d+)\.block\.([02])\.(weight|bias)$")
_S_LAYER = re.compile(r"^layers\.(\d+)\.(weight|bias)$")
_NORM = re.compile(r"^(?:layernorms|layer_norms)\.(\d+)\.(\w+)$")
_HEAD = re.compile(r"^linear_(in|out)\.(weight|bias)$")
_RELEASE = re.compile(r"B-(\d+)_Wi-(\d+)_res_(\d+)_(imagenet21|imagenet|cifar100|cifar10)_epochs_(\d+)")
# the fine-tuning command of the authors' README: crops every fine-tuned release was trained with
FINETUNE_CROP = {"crop_scale": [0.4, 1.0], "crop_ratio": [1.0, 1.0]}


def release_from_name(path: str) -> dict | None:
    """What an authors' release file name says (see the module docstring), or None for another name:
    {"arch", "res", "dataset" (ours), "num_classes", "epochs", "fine_tuned", "release"}."""
    m = _RELEASE.search(os.path.basename(str(path)))
    if m is None:
        return None
    depth, width, res, theirs, epochs = m.groups()
    info = datasets.BUILTIN[NAMES.get(theirs, theirs)]
    return {"arch": f"B_{int(depth)}-Wi_{int(width)}", "res": int(res), "dataset": info.name,
            "num_classes": info.num_classes, "epochs": int(epochs), "fine_tuned": theirs != "imagenet21",
            "release": m.group(0)}


# --- reading a file ----------------------------------------------------------------------------

def load_state_dict_file(path: str) -> dict:
    """The tensors of an authors' weight file (unwrapped, prefixes kept), or one clear UserError."""
    if not os.path.exists(path):
        raise UserError(f"checkpoint {path} not found; download the weights (the authors' README links them) "
                        f"and pass the file's path")
    if os.path.isdir(path):
        raise UserError(f"{path} is a folder; pass the weights file inside it (the authors name it "
                        f"'<model>_weights', next to 'config.txt')")
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        raise UserError(f"{path} is empty; the download failed, download the weights again")
    if head.lstrip()[:1] == b"<" or b"<html" in head.lower():
        raise UserError(f"{path} is a web page (HTML), not the weights: the download saved a page instead "
                        f"of the file (e.g. Google Drive's 'cannot scan for viruses' notice); download "
                        f"the file itself again, e.g. via the page's 'Download anyway' button")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pickle-protocol notes of the weights-only unpickler
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - every way a foreign file fails ends in one sentence
        msg = str(e)
        if "Weights only load failed" in msg and "GLOBAL" in msg.upper():
            raise UserError(f"{path} holds Python objects other than tensors (possibly code), so it was not "
                            f"opened and nothing in it ran; use the authors' weight file (a state dict), "
                            f"or re-save a trusted model with torch.save(model.state_dict(), ...)") from None
        if head.startswith(_TORCH_MAGIC):  # a PyTorch file (zip or legacy) that cannot be read to its end
            raise UserError(f"{path} is truncated or damaged ({type(e).__name__}); download it again") from None
        raise UserError(f"{path} is not a PyTorch weight file ({type(e).__name__}); pass the downloaded "
                        f"weights of one of the paper's models") from None
    return unwrap(obj, path)


def unwrap(obj, where: str = "the checkpoint") -> dict:
    """A state dict: the object itself, or the one held under a wrapper key ("model", "state_dict", ...)."""
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return dict(inner)
        if obj and all(isinstance(k, str) for k in obj) and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
    what = f"a {type(obj).__name__}"
    if isinstance(obj, dict):
        what += f" with keys {', '.join(map(str, list(obj)[:6]))}"
    raise UserError(f"{where} is not a state dict, a mapping of names to tensors (it holds {what}); "
                    f"pass the authors' weight file")


def strip_prefixes(sd: dict) -> dict:
    """Remove leading `module.` / `_orig_mod.` (in any order and number) from every key."""
    out = {}
    for k, v in sd.items():
        changed = True
        while changed:
            changed = False
            for p in PREFIXES:
                if k.startswith(p):
                    k, changed = k[len(p):], True
        out[k] = v
    return out


# --- what a state dict holds -------------------------------------------------------------------

def infer_arch(sd: dict) -> tuple[ArchSpec | None, int | None, int | None, str]:
    """(architecture, input features, classes, norm) that a paper state dict's names and shapes imply."""
    w_in, w_out = sd.get("linear_in.weight"), sd.get("linear_out.weight")
    dim_in = int(w_in.shape[1]) if w_in is not None and w_in.dim() == 2 else None
    classes = int(w_out.shape[0]) if w_out is not None and w_out.dim() == 2 else None
    norm = "batch" if any(k.endswith("running_mean") for k in sd) else "layer"
    if w_in is None or w_in.dim() != 2:
        return None, dim_in, classes, norm
    width = int(w_in.shape[0])
    blocks = {int(m[1]) for k in sd if (m := _B_BLOCK.match(k))}
    layers = {int(m[1]) for k in sd if (m := _S_LAYER.match(k))}
    if blocks:
        w_e = sd.get(f"blocks.{min(blocks)}.block.0.weight")
        exp = int(w_e.shape[0]) // width if w_e is not None and w_e.dim() == 2 and width else 4
        return ArchSpec("B", max(blocks) + 1, width, max(exp, 1)), dim_in, classes, norm
    return ArchSpec("S", (max(layers) + 2) if layers else 1, width, 4), dim_in, classes, norm


def _implied_res(dim_in: int, channels: int = 3) -> int | None:
    if dim_in % channels:
        return None
    r = int(round((dim_in // channels) ** 0.5))
    return r if r * r * channels == dim_in else None


IMPORT_FLAGS = {"arch": "--arch {}", "res": "--res {}", "classes": "--num-classes {}", "dataset": "--dataset {}"}
# the same fixes for mlpscale-finetune, which reads the authors' file through finetune.from
FINETUNE_FLAGS = {"arch": "--set model.arch={}", "res": "--set finetune.source_res={}",
                  "classes": "--set finetune.source_classes={}", "dataset": None}
OUR_KEYS = re.compile(r"^blocks\.\d+\.(expand|contract|linear)\.weight$")  # our MLP's own parameter names


def convert_state_dict(sd: dict, arch: str, res: int, num_classes: int,
                       where: str = "the checkpoint", flags: dict | None = None) -> tuple[dict, str]:
    """Their (prefix-free) state dict -> (our state dict, norm kind), checked against arch/res/classes.
    `flags` spells the fixes for the command that is running (IMPORT_FLAGS by default)."""
    flags = flags or IMPORT_FLAGS
    spec = parse_arch(arch)
    if any(OUR_KEYS.match(k) for k in sd):
        raise UserError(f"{where} is a state dict of an mlpscale MLP (our parameter names), not the authors' "
                        f"file, so it cannot be imported; pass the run folder or last.pt that mlpscale wrote "
                        f"it in, or the authors' original weights file")
    if "linear_in.weight" not in sd or "linear_out.weight" not in sd:
        raise UserError(f"{where} has no linear_in/linear_out weights (keys: {', '.join(list(sd)[:5])}, ...), so it "
                        f"is not a checkpoint of the paper's BottleneckMLP/StandardMLP")
    found, dim_in, classes, norm = infer_arch(sd)
    kind = {"B": "BottleneckMLP", "S": "StandardMLP"}
    if found is None:
        raise UserError(f"{where}: linear_in.weight has shape {tuple(sd['linear_in.weight'].shape)}, not "
                        f"(width, inputs); it is not a checkpoint of the paper's MLPs")
    arch_ok = found.kind == spec.kind and found.depth == spec.depth and found.width == spec.width \
        and (spec.kind == "S" or found.expansion == spec.expansion)
    r = _implied_res(dim_in)
    known = [d.name for d in datasets.BUILTIN.values() if d.num_classes == classes and d.name != "digits"]
    # every flag that differs, so one message fixes all of them
    fix = ([] if arch_ok else [flags["arch"].format(found.name)]) + \
          ([] if dim_in == 3 * res * res or not r else [flags["res"].format(r)]) + \
          ([] if classes == num_classes else [flags["classes"].format(classes)] +
           [flags["dataset"].format(k) for k in known[:1] if flags["dataset"]])
    fix = f"; pass {' '.join(fix)}" if fix else ""
    if not arch_ok:
        got = f"{found.name} (a {kind[found.kind]}" + (f" with {found.depth} blocks" if found.kind == "B" else
                                                        f" of depth {found.depth}") + f", width {found.width})"
        raise UserError(f"{where} holds {got}, not {spec.name}{fix}")
    if dim_in != 3 * res * res:
        trained = f"it was trained at {r}x{r}" if r else "which is no square RGB image"
        raise UserError(f"{where} expects {dim_in} input features, not 3*{res}*{res} = {3 * res * res}: "
                        f"{trained}{fix}")
    if classes != num_classes:
        on = f" (a head for {' or '.join(known)})" if known else ""
        raise UserError(f"{where} has {classes} classes{on}, not {num_classes}{fix}")

    ours: dict[str, torch.Tensor] = {}
    unknown = []
    for k, v in sd.items():
        if m := _HEAD.match(k):
            ours[k] = v
        elif spec.kind == "B" and (m := _B_BLOCK.match(k)):
            ours[f"blocks.{m[1]}.{'expand' if m[2] == '0' else 'contract'}.{m[3]}"] = v
        elif spec.kind == "S" and (m := _S_LAYER.match(k)):
            ours[f"blocks.{m[1]}.linear.{m[2]}"] = v
        elif m := _NORM.match(k):
            ours[f"blocks.{m[1]}.norm.{m[2]}"] = v
        else:
            unknown.append(k)
    w = ours["linear_in.weight"]  # (width, C*H*W) -> (width, H*W*C)
    ours["linear_in.weight"] = w.reshape(len(w), 3, res, res).permute(0, 2, 3, 1).reshape(len(w), -1).contiguous()

    with torch.device("meta"):  # shapes only: no memory, no random init
        want = MLP(arch, res, num_classes, norm=norm).state_dict()
    missing = [k for k in want if k not in ours]
    unknown += [k for k in ours if k not in want and k not in unknown]
    if missing or unknown:
        parts = ([f"lacks {len(missing)} tensors of {spec.name} (e.g. {missing[0]})"] if missing else []) + \
                ([f"has {len(unknown)} it does not use (e.g. {unknown[0]})"] if unknown else [])
        raise UserError(f"{where} {' and '.join(parts)}; it is not a complete {kind[spec.kind]} "
                        f"{spec.name} checkpoint of the paper")
    for k, t in want.items():
        if tuple(ours[k].shape) != tuple(t.shape):
            raise UserError(f"{where}: tensor {k} has shape {tuple(ours[k].shape)}, {spec.name} needs "
                            f"{tuple(t.shape)}; the file does not match the architecture")
        if ours[k].is_floating_point() and not torch.isfinite(ours[k]).all():
            raise UserError(f"{where}: tensor {k} holds NaN or infinite values; the weights are damaged")
    return ours, norm


def from_paper_checkpoint(path_or_state_dict, arch: str, res: int, num_classes: int, flags: dict | None = None) -> MLP:
    """Our MLP (eval mode, CPU, fp32) computing what the authors' model computes on the same image.

    `path_or_state_dict`: a weights file or an already loaded state dict (prefixes and wrappers allowed).
    Ours takes the image flattened HWC, theirs CHW: `ours(x.permute(0, 2, 3, 1).flatten(1)) ==
    theirs(x.flatten(1))` for an NCHW batch x.
    """
    model, _ = _build(path_or_state_dict, arch, res, num_classes, flags)
    return model


def _build(path_or_state_dict, arch: str, res: int, num_classes: int, flags: dict | None = None) -> tuple[MLP, str]:
    from_file = isinstance(path_or_state_dict, (str, os.PathLike))
    if from_file:
        where = str(path_or_state_dict)
        sd = load_state_dict_file(where)
    else:
        where = "the state dict passed in"
        sd = unwrap(path_or_state_dict, where)
    ours, norm = convert_state_dict(strip_prefixes(sd), arch, res, num_classes, where, flags)
    # the loaded tensors become the parameters (assign): no second copy, no random init of 124M weights;
    # tensors the caller passed in are cloned so the model never aliases them
    ours = {k: (v.float() if v.is_floating_point() else v) for k, v in ours.items()}
    if not from_file:
        ours = {k: v.clone() for k, v in ours.items()}
    with torch.device("meta"):
        model = MLP(arch, res, num_classes, act="gelu", norm=norm)
    model.load_state_dict(ours, strict=True, assign=True)
    return model.eval(), norm


# --- writing a run folder ----------------------------------------------------------------------

def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _dataset_info(dataset: str) -> datasets.DatasetInfo:
    name = NAMES.get(dataset, dataset)
    if name not in datasets.BUILTIN:
        raise UserError(f"unknown dataset '{dataset}' for the paper's checkpoints; choose one of "
                        f"{', '.join(n for n in datasets.known_names() if n != 'digits')}")
    return datasets.BUILTIN[name]


def import_paper(file: str, arch: str, res: int, num_classes: int, out_dir: str,
                 dataset: str = "imagenet21k", overwrite: bool = False, release: dict | None = None) -> str:
    """Convert an authors' weight file into the run folder `out_dir`; returns the path of its model.pt.

    Writes `model.pt` (a "model" checkpoint: weights, model_meta, config, source), `config.yaml`
    (the resolved Config describing the model and data) and `summary.json`. `dataset` names what the
    head was trained on (imagenet21k for the pre-trained files, e.g. cifar10 for `..._in21k_cifar10`);
    it sets the normalisation constants, as the authors' `data_stats.py`. `release` (`release_from_name`):
    a fine-tuned release's crops become the run's aug.crop_* (what TTA draws); its epochs are recorded.
    """
    info = _dataset_info(dataset)
    mean, std, _ = datasets.stats_for(info, "paper")  # the constants the authors trained with
    model, norm = _build(file, arch, res, num_classes)
    if num_classes != info.num_classes:
        raise UserError(f"{info.name} has {info.num_classes} classes, the checkpoint {num_classes}; pass the "
                        f"--dataset its head was trained on (e.g. cifar10 for a file fine-tuned on CIFAR-10)")
    sha = _sha256(file)
    out_dir = os.path.abspath(out_dir)
    with io.FolderLock(out_dir, "import", advice="choose another --out"):
        _check_target(out_dir, sha, overwrite)
        cfg = config.Config()
        cfg.data.dataset, cfg.data.res, cfg.data.stats = info.name, res, "paper"
        cfg.model.arch, cfg.model.act, cfg.model.norm = model.spec.name, "gelu", norm
        cfg.run.name, cfg.run.out_dir = os.path.basename(out_dir), os.path.dirname(out_dir)
        if release and release["fine_tuned"]:
            cfg.aug.crop_scale = list(FINETUNE_CROP["crop_scale"])
            cfg.aug.crop_ratio = list(FINETUNE_CROP["crop_ratio"])
        source = {"file": os.path.basename(file), "path": os.path.abspath(file), "sha256": sha,
                  "bytes": os.path.getsize(file), "flatten_from": "chw",
                  "origin": "Bachmann et al. 2023, github.com/gregorbachmann/scaling_mlps"}
        if release:
            source.update(release=release["release"], epochs=release["epochs"], fine_tuned=release["fine_tuned"])
        model_path = os.path.join(out_dir, "model.pt")
        checkpoint.save_checkpoint(model_path, {
            "model": model.state_dict(),
            "model_meta": checkpoint.model_meta(model, act="gelu", norm=norm, dataset=info.name,
                                                mean=mean, std=std),
            "config": config.to_dict(cfg),
            "source": source,
        }, kind="model")
        config.save_config(cfg, os.path.join(out_dir, "config.yaml"))
        io.write_json_atomic(os.path.join(out_dir, "summary.json"), {
            "kind": "import-paper", "arch": model.spec.name, "res": res, "num_classes": num_classes,
            "dataset": info.name, "params": model.get_num_params(), "norm": norm, "source": source,
        })
    return model_path


def _check_target(out_dir: str, sha: str, overwrite: bool) -> None:
    """Never replace another run's weights by accident; re-importing the same file is fine."""
    if overwrite:
        return
    if os.path.exists(os.path.join(out_dir, "last.pt")):
        raise UserError(f"{out_dir} is a training run folder (it holds last.pt); choose a new --out")
    if os.path.exists(os.path.join(out_dir, "model.pt")):
        try:
            with open(os.path.join(out_dir, "summary.json")) as f:
                old = json.load(f)["source"]["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            old = None
        if old != sha:
            raise UserError(f"{out_dir} already holds a model.pt from another file; choose a new --out "
                            f"or pass --overwrite to replace it")


# --- CLI -----------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = cli.command_parser(
        "mlpscale-import-paper",
        "Import a weights file released with 'Scaling MLPs' (Bachmann et al. 2023) as a run folder for "
        "fine-tuning and evaluation.",
        "mlpscale-import-paper B-12_Wi-1024_res_64_imagenet21_epochs_800_weights --out runs/bmlp12",
        "The weights are downloaded with the authors' utils/download.py (github.com/gregorbachmann/scaling_mlps). "
        "The run folder gets model.pt, config.yaml and summary.json; the first layer is permuted once from the "
        "authors' channels-first flattening to ours, so the logits are the same.")
    p.add_argument("file", help="the authors' weights file (a state dict), e.g. "
                                "B-12_Wi-1024_res_64_imagenet21_epochs_800_weights")
    p.add_argument("--arch", default=None, help="architecture in the paper's naming, e.g. B_12-Wi_1024 "
                                                "(default: read from the authors' file name)")
    cli.add(p, "--res", "the one the model was trained at (default: from the file name, else 64)",
            type=int_range(1, config.MAX_RES))
    cli.add(p, "--num-classes", "default: the dataset's, 11230 for imagenet21k", type=int_range(1, 10**7))
    cli.add(p, "--out", "the run folder to write", required=True)
    cli.add(p, "--dataset", "what the head was trained on: imagenet21k (pre-trained), or e.g. cifar10 / cifar100 / "
                            "imagenet1k for the fine-tuned files; sets the normalisation (default: from the file "
                            "name, else imagenet21k)")
    cli.add(p, "--overwrite", "replaces a model.pt imported from another file, or a training run's folder")
    cli.deprecate(p, "--force", "--overwrite")
    return p


@cli_entry
def main(argv=None):
    args = build_parser().parse_args(argv)
    release = release_from_name(args.file) or {}
    arch = args.arch or release.get("arch")
    if arch is None:
        raise UserError(f"{os.path.basename(args.file)} is not named like an authors' release "
                        f"(B-12_Wi-1024_res_64_imagenet21_epochs_800...), so its architecture is unknown; "
                        f"pass --arch (e.g. --arch B_12-Wi_1024)")
    res = args.res or release.get("res") or 64
    dataset = args.dataset or release.get("dataset") or "imagenet21k"
    info = _dataset_info(dataset)
    num_classes = args.num_classes if args.num_classes is not None else info.num_classes
    path = import_paper(args.file, arch, res, num_classes, args.out, dataset=dataset,
                        overwrite=args.overwrite, release=release or None)
    out = os.path.dirname(path)
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    params = summary["params"]
    said = f", {release['epochs']} epochs" + (f" (fine-tuned on {summary['dataset']})" if release["fine_tuned"]
                                                else " (pre-trained)") if release else ""
    print(f"imported {args.file} as {parse_arch(arch).name}, {res}x{res}, {num_classes} classes "
          f"({params / 1e6:.1f}M params){said}")
    print(f"wrote {path}, {os.path.join(out, 'config.yaml')}, {os.path.join(out, 'summary.json')}")
    print("next:")
    print(f"  fine-tune: mlpscale-finetune --config CONFIG --set finetune.from={out}")
    data = f"--dataset {summary['dataset']} --root DATA_ROOT"  # DATA_ROOT: where mlpscale-convert wrote the betons
    print(f"  evaluate:  mlpscale-eval {out} {data}")
    print(f"  filters:   mlpscale-eval {out} {data} --filters filters.png")
    return 0


if __name__ == "__main__":
    main()
