"""The ``dotlib`` command: fit a latent DOT operator on image folders, enhance a folder, evaluate.

``dotlib fit``       natural and restored folders -> an operator file (:class:`LatentOT`);
``dotlib enhance``   an operator and a folder of restorations -> x̂α for each α, as PNG;
``dotlib evaluate``  output folders against the clean images -> a metrics table and a
                     perception–distortion plot.

User errors (a missing folder, no images, a bad α, an output that would be overwritten,
a file that is not an operator) end with exit code 2 and one line on stderr, no
traceback (``DOTLIB_TRACEBACK=1`` shows it). Warnings print as one line too.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # heavy imports wait for a command to run, so that --help is instant
    import pandas as pd
    import torch

__all__ = ["UserError", "format_alpha", "main", "output_name"]


class UserError(Exception):
    """A mistake in the command line or its inputs: reported in one line, exit code 2."""


#: Exceptions that mean "fix your input", reported without a traceback.
_USER_ERRORS = (UserError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError, ValueError)


# ------------------------------------------------------------------ helpers


def format_alpha(alpha: float) -> str:
    """α as written in file names: 0, 0.5, -0.2, 1.5 (at most 6 decimals, no trailing zeros)."""
    text = f"{alpha:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def output_name(stem: str, alpha: float, several: bool) -> str:
    """``<stem>.png`` for a single α, ``<stem>_a<alpha>.png`` when several are written."""
    return f"{stem}_a{format_alpha(alpha)}.png" if several else f"{stem}.png"


_ALPHA_SUFFIX = re.compile(r"(.+)_a(-?\d+(?:\.\d+)?)")


def _alpha(text: str) -> float:
    from .validate import check_alpha

    try:
        return check_alpha(float(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error) if "must be" in str(error) else
                                         f"α must be a finite number, got {text!r}") from None


#: What argparse takes for a negative number rather than an option: also ``-1e-1`` and ``-.5``.
_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _images(folder: str | Path, what: str):
    """The :class:`dotlib.data.ImageFolder` of ``folder`` (recursive, sorted); ``UserError`` if none."""
    from .data import ImageFolder

    try:
        return ImageFolder(folder)
    except FileNotFoundError as error:
        raise UserError(f"{what}: {error}") from None


def _within(inner: Path, outer: Path) -> bool:
    inner, outer = inner.expanduser().resolve(), outer.expanduser().resolve()
    return inner == outer or outer in inner.parents


def _check_separate(inputs: list[tuple[str, Path]], output: tuple[str, Path]) -> None:
    """Input folders ``(role, folder)`` given twice, and an output folder that is, holds or lies
    inside an input folder (its files would be read as inputs next time): ``UserError`` naming them."""
    seen: dict[Path, str] = {}
    for role, folder in inputs:
        resolved = folder.expanduser().resolve()
        if resolved in seen:
            raise UserError(f"{role} and {seen[resolved]} are the same folder {folder}")
        seen[resolved] = role
    role, folder = output
    for other, source in inputs:
        if _within(folder, source) or _within(source, folder):
            where = "is" if _within(folder, source) and _within(source, folder) else \
                "lies inside" if _within(folder, source) else "holds"
            raise UserError(f"{role} {folder} {where} {other} {source}: its files would be read as inputs next "
                            f"time; choose a folder apart from the inputs")


class _Lock:
    """An advisory lock on an output folder (``.dotlib.lock`` in it): a second dotlib process writing
    there stops at once instead of mixing its files with the first one's. A folder the lock created
    is removed again if nothing was written in it (an input error part-way leaves no trace)."""

    def __init__(self, folder: Path):
        self.path = folder / ".dotlib.lock"
        self.created = not folder.exists()

    def __enter__(self) -> "_Lock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise UserError(f"another dotlib process is writing to {self.path.parent}; wait for it to finish "
                            f"or choose another output folder") from None
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()
        self.path.unlink(missing_ok=True)
        if self.created and not any(self.path.parent.iterdir()):
            self.path.parent.rmdir()


def _check_output_file(path: Path) -> None:
    """An output file that can be written at the end: not a folder, a name short enough for its
    temporary sibling (``.<name>.<random>.tmp``)."""
    if path.is_dir():
        raise UserError(f"{path} is a folder; -o names the file to write, e.g. {path / 'operator.safetensors'}")
    if len(path.name.encode()) > 240:
        raise UserError(f"the file name {path.name[:40]}... has {len(path.name.encode())} bytes; at most 240 "
                        f"(the file system's limit is 255, and the file is first written under a longer name)")


def _refuse_existing(paths: Sequence[Path], force: bool) -> None:
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        what = f"{existing[0]} and {len(existing) - 1} other outputs already exist" if len(existing) > 1 \
            else f"{existing[0]} already exists"
        raise UserError(f"{what}; pass --force to overwrite, or choose another output")


def _check_fits(ot, image: torch.Tensor, file: Path) -> None:
    latent = ot.encoder.latent_size(tuple(image.shape[-2:]))
    if min(latent) < ot.patch_size:
        raise UserError(f"{file} ({image.shape[-1]}x{image.shape[-2]}) is too small for {ot.patch_size}x"
                        f"{ot.patch_size} latent patches of encoder {ot.encoder.name!r} (factor "
                        f"{ot.encoder.factor}): images need at least {ot.patch_size * ot.encoder.factor} "
                        f"pixels per side")


def save_png(image: torch.Tensor, path: Path) -> None:
    """``[3, H, W]`` in [0, 1] -> an 8-bit RGB PNG (rounded), written atomically."""
    import numpy as np
    import torch
    from PIL import Image

    from .io import atomic_path

    array = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    with atomic_path(path) as temporary:
        Image.fromarray(np.ascontiguousarray(array), mode="RGB").save(temporary, format="PNG")


# ------------------------------------------------------------------ fit


def fit(args: argparse.Namespace) -> None:
    """Update the target with the natural images, the source with the restored ones, fit, save."""
    import torch
    from .progress import progress

    from .data import load_image
    from .latent_ot import LatentOT

    output = Path(args.output)
    _check_output_file(output)
    _refuse_existing([output], args.force)
    folders = {"target": _images(args.natural, "--natural"), "source": _images(args.restored, "--restored")}
    if folders["target"].root.resolve() == folders["source"].root.resolve():
        raise UserError(f"--natural and --restored are the same folder {args.natural}: the operator would map "
                        f"those images onto themselves; give the restorer's outputs as --restored")
    ot = LatentOT(args.encoder, patch_size=args.patch_size, eps=args.eps, ridge=args.ridge,
                  device=args.device, batch_size=args.batch_size)
    for which, folder in folders.items():
        pending: list[torch.Tensor] = []

        def flush() -> None:
            if pending:
                ot.update(torch.stack(pending).to(ot.device), which=which)
                pending.clear()

        for file in progress(folder.files, desc=f"{which} ({folder.root.name})", unit="image"):
            image = load_image(file)
            _check_fits(ot, image, file)
            if pending and (pending[0].shape != image.shape or len(pending) == args.batch_size):
                flush()
            pending.append(image)
        flush()
    latent_w2 = ot.fit()
    ot.save(output)
    for which, folder, role in (("target", folders["target"], "natural"), ("source", folders["source"], "restored")):
        stats = ot.target if which == "target" else ot.source
        print(f"{which}: {len(folder)} {role} images from {folder.root}, {stats.count} latent patches of {ot.dim} values")
    print(f"latent W2² (source -> target) = {latent_w2:.6g}   [encoder {ot.encoder.name}, patch {ot.patch_size}, "
          f"ridge {ot.ridge} eps {ot.eps:g}]")
    print(f"wrote {output}")


# ------------------------------------------------------------------ enhance


def enhance(args: argparse.Namespace) -> None:
    """Write x̂α of every image of IN_DIR for every α into OUT_DIR (never over an input)."""
    from .progress import progress

    from .data import load_image
    from .latent_ot import LatentOT

    alphas = [float(a) for a in args.alpha]
    names = [format_alpha(a) for a in alphas]
    if len(set(names)) != len(names):
        raise UserError(f"--alpha lists the same α twice (as file names: {', '.join(names)})")
    folder = _images(args.in_dir, "IN_DIR")
    out_dir = Path(args.out_dir)
    _check_separate([("IN_DIR", folder.root)], ("OUT_DIR", out_dir))
    keys = folder.keys()   # a.png and a.jpg would both be written to a.png
    plan = [(file, [out_dir / output_name(key, alpha, len(alphas) > 1) for alpha in alphas])
            for file, key in zip(folder.files, keys)]
    outputs = [path for _, paths in plan for path in paths]
    _refuse_existing(outputs, args.force)
    ot = LatentOT.load(args.operator, device=args.device)
    if not ot.fitted:
        raise UserError(f"{args.operator} holds statistics but no fitted operator; run dotlib fit again")
    for file in progress(folder.files, desc="checking inputs", unit="image"):   # every input, before any output
        _check_fits(ot, load_image(file), file)
    with _Lock(out_dir):
        _forget_earlier(out_dir, outputs, args.force)
        for file, paths in progress(plan, desc="enhancing", unit="image"):
            results = ot.sweep(load_image(file)[None].to(ot.device), alphas, decode=args.decode)[:, 0]
            for result, path in zip(results, paths):
                save_png(result, path)
        _record_outputs(out_dir, outputs)
    print(f"wrote {len(outputs)} images ({len(plan)} inputs x {len(alphas)} α: {', '.join(names)}; "
          f"decode {args.decode}) to {out_dir}")


#: The list of the files ``dotlib enhance`` wrote in an output folder (what ``--force`` may remove).
_MANIFEST = ".dotlib-enhance.json"


def _forget_earlier(out_dir: Path, outputs: list[Path], force: bool) -> None:
    """With ``--force``: remove what an earlier ``dotlib enhance`` wrote to ``out_dir`` and this run
    does not write again (other α, other inputs); nothing else is touched."""
    import json

    manifest = out_dir / _MANIFEST
    if not force or not manifest.is_file():
        return
    keep = {path.resolve() for path in outputs}
    for name in json.loads(manifest.read_text()):
        earlier = out_dir / name
        if earlier.resolve() not in keep and _within(earlier, out_dir):
            earlier.unlink(missing_ok=True)


def _record_outputs(out_dir: Path, outputs: list[Path]) -> None:
    import json

    from .io import write_text

    write_text(json.dumps(sorted(path.relative_to(out_dir).as_posix() for path in outputs), indent=1) + "\n",
               out_dir / _MANIFEST)


# ------------------------------------------------------------------ evaluate

def _quality_metrics() -> tuple:
    """The table's metric columns: every quality index of the registry (imported late: torch)."""
    from .metrics.registry import METRICS

    return tuple(entry for entry in METRICS if entry.higher_is_better is not None)


def _groups(clean_root: Path, clean_keys: set[str], out_folders: Sequence) -> dict[tuple[str, float], list]:
    """``(folder label, α or NaN) -> [(clean key, output file)]``, pairing the files of each
    :class:`~dotlib.data.ImageFolder` of ``out_folders`` with the clean images by name."""
    groups: dict[tuple[str, float], list] = {}
    labels: list[str] = []
    for folder in out_folders:
        label = folder.root.name or str(folder.root)
        label = label if label not in labels else str(folder.root)
        labels.append(label)
        unmatched = []
        for key, file in zip(folder.keys(), folder.files):
            alpha = math.nan
            match = _ALPHA_SUFFIX.fullmatch(key)
            if key not in clean_keys and match and match[1] in clean_keys:
                key, alpha = match[1], float(match[2])
            if key not in clean_keys:
                unmatched.append(file)
                continue
            groups.setdefault((label, alpha), []).append((key, file))
        if len(unmatched) == len(folder.files):
            raise UserError(f"no image in {folder.root} is named like a clean image of {clean_root} "
                            f"(<name> or <name>_a<alpha>, e.g. {unmatched[0].name})")
        if unmatched:
            warnings.warn(f"{len(unmatched)} image(s) in {folder.root} have no clean image of the same name "
                          f"and are left out (e.g. {unmatched[0].name})")

    def order(item: tuple[tuple[str, float], list]) -> tuple[int, float]:
        (label, alpha), _ = item
        return labels.index(label), -math.inf if math.isnan(alpha) else alpha

    return dict(sorted(groups.items(), key=order))


def measure_set(images: list, clean: list, models: tuple, device) -> dict[str, float]:
    """Every metric of ``images`` (``[3, H, W]`` each, any sizes) against the paired ``clean`` ones,
    through the one streaming evaluator of the study (``models``: ``perception_models``' first three)."""
    from .metrics import StreamingEvaluator

    features, classifier, lpips = models if len(images) >= 2 else (None, None, models[2])   # FID needs 2
    try:
        evaluator = StreamingEvaluator(clean, device=device, features=features, classifier=classifier, lpips=lpips,
                                       kid_capacity=max(2, len(images)), kid_subset_size=min(1000, len(images)),
                                       is_splits=min(10, len(images)))
    except ValueError as error:
        raise UserError(f"cannot measure these images: {error}") from None
    for index, (image, reference) in enumerate(zip(images, clean)):
        evaluator.update(reference[None], {"out": image[None]}, [index])
    return evaluator.compute()["out"]


def _markdown(table: pd.DataFrame, shown: list) -> str:
    header = ["folder", "α", "images"] + [entry.header + entry.arrow for entry in shown]
    lines = ["| " + " | ".join(header) + " |", "| :-- | --: | --: |" + " --: |" * len(shown)]
    for row in table.to_dict("records"):
        alpha = "" if math.isnan(row["alpha"]) else format_alpha(row["alpha"])
        cells = [str(row["folder"]), alpha, str(row["images"])]
        cells += [f"{row[entry.key] * entry.scale:.{entry.decimals}f}" for entry in shown]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _measured(groups: dict, clean_files: dict[str, Path], device: torch.device) -> tuple[pd.DataFrame, dict[str, str]]:
    """``(table, missing)``: one row of metrics per (folder, α) set of ``groups`` against the clean
    images ``clean_files`` (key -> file), and the metrics left out with the reason."""
    import pandas as pd

    from .data import load_image
    from .pipeline import perception_models
    from .progress import progress

    clean = {key: load_image(file) for key, file in progress(clean_files.items(), desc="clean images", unit="image")}
    features, classifier, lpips, missing = perception_models(device)
    rows = []
    for (label, alpha), pairs in progress(groups.items(), desc="measuring", unit="set"):
        images = [load_image(file) for _, file in pairs]
        for (key, file), image in zip(pairs, images):
            if image.shape != clean[key].shape:
                raise UserError(f"{file} is {image.shape[-1]}x{image.shape[-2]} but its clean image "
                                f"{clean_files[key]} is {clean[key].shape[-1]}x{clean[key].shape[-2]}")
        values = measure_set(images, [clean[key] for key, _ in pairs], (features, classifier, lpips), device)
        rows.append({"folder": label, "alpha": alpha, "images": len(pairs),
                     **{entry.key: values.get(entry.key, math.nan) for entry in _quality_metrics()}})
    return pd.DataFrame(rows), missing


def _report_text(table: pd.DataFrame, n_clean: int, clean_root: Path, groups: dict, missing: dict[str, str]) -> str:
    """The Markdown report: the table of the metrics with values, then notes on what they are and
    on every metric left out."""
    text = _markdown(table, [entry for entry in _quality_metrics() if table[entry.key].notna().any()])
    notes = [f"{n_clean} clean images from {clean_root}; PSNR pools the squared error over every pixel "
             f"of a set (torchmetrics, as the authors); mean PSNR, SSIM, MSE and LPIPS are per image, then averaged; "
             f"SWD, detail, FID, KID and IS compare each set with the clean images it is paired with"]
    if any(len(pairs) < 2 for pairs in groups.values()):
        missing.setdefault("fid/kid/is", "sets of one image have no FID, KID or IS (a Gaussian needs 2 images)")
    reasons: dict[str, list[str]] = {}
    for name, reason in missing.items():
        reasons.setdefault(reason, []).append(name.upper())
    notes += [f"{'/'.join(names)} not computed: {reason}" for reason, names in reasons.items()]
    return text + "\n" + "\n".join(f"- {note}" for note in notes) + "\n"


def evaluate(args: argparse.Namespace) -> None:
    """Pair output images with the clean ones by name, measure each folder/α, write table and plot."""
    import matplotlib.pyplot as plt
    import torch

    from . import plots
    from .io import write_csv, write_text

    report = Path(args.output)
    files = {name: report / name for name in ("metrics.csv", "metrics.md", "perception_distortion.png",
                                              "perception_distortion.pdf")}
    _refuse_existing(list(files.values()), args.force)
    clean_folder = _images(args.clean, "--clean")
    out_folders = [_images(out_dir, "OUT_DIR") for out_dir in args.out_dirs]
    _check_separate([("--clean", clean_folder.root)] + [(f"OUT_DIR {f.root}", f.root) for f in out_folders],
                    ("the report folder -o", report))
    clean_files = dict(zip(clean_folder.keys(), clean_folder.files))
    groups = _groups(clean_folder.root, set(clean_files), out_folders)
    with _Lock(report):   # held while measuring: a second evaluate into -o stops at once
        table, missing = _measured(groups, clean_files, torch.device(args.device))
        text = _report_text(table, len(clean_files), clean_folder.root, groups, missing)
        print(text, end="")
        plot_table = table.assign(label=[label if math.isnan(a) else f"α={format_alpha(a)}"
                                         for label, a in zip(table.folder, table.alpha)])
        figure = plots.labelled_plane(plot_table, perception="swd", distortion="mse", group="folder", label="label")
        write_csv(table, files["metrics.csv"])
        write_text(text, files["metrics.md"])
        plots.save_figure(figure, report / "perception_distortion")
        plt.close(figure)
    print(f"wrote {', '.join(str(p) for p in files.values())}")


# ------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    """The ``dotlib`` argument parser with its three subcommands."""
    parser = argparse.ArgumentParser(prog="dotlib", description="Deep Optimal Transport (Adrai et al. 2023): "
                                     "improve any restorer's outputs with a latent Gaussian OT map.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def device_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--device", default="cpu", help="where to compute: cpu (default), cuda, cuda:1, mps")

    def force_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--force", action="store_true", help="overwrite existing outputs")

    sub = commands.add_parser("fit", help="fit an operator on natural and restored image folders",
                              description="Fit the latent DOT operator: Gaussian statistics of the latent patches "
                              "of natural images (target) and of restorations of other images (source).")
    sub.add_argument("--natural", required=True, metavar="DIR", help="folder of natural images (any sizes)")
    sub.add_argument("--restored", required=True, metavar="DIR", help="folder of the restorer's outputs (unpaired)")
    sub.add_argument("--encoder", default="embedded",
                     help="latent space: embedded (default), pixel, a diffusers VAE folder or a Hugging Face id")
    sub.add_argument("--patch-size", type=int, default=5, help="odd latent patch side (default 5)")
    sub.add_argument("--eps", type=float, default=None, help="ridge (default 1e-9 relative, 1e-7 absolute)")
    sub.add_argument("--ridge", choices=("relative", "absolute"), default="relative", help="ridge convention")
    sub.add_argument("--batch-size", type=int, default=4, help="images of one size encoded at once (default 4)")
    sub.add_argument("-o", "--output", required=True, metavar="FILE", help="operator file to write (.safetensors)")
    device_option(sub)
    force_option(sub)
    sub.set_defaults(run=fit)

    sub = commands.add_parser("enhance", help="transport a folder of restorations, one PNG per image and α",
                              description="Write x̂α = (1-α) x̂0 + α x* for every image of IN_DIR: <stem>.png for one "
                              "α, <stem>_a<α>.png for several (put --alpha after the folders). α = 1 writes the input back (8-bit "
                              "rounded); grey and RGBA inputs become RGB (alpha composited on white).")
    sub.add_argument("operator", metavar="OPERATOR", help="file written by dotlib fit")
    sub.add_argument("in_dir", metavar="IN_DIR", help="folder of restorations x*")
    sub.add_argument("out_dir", metavar="OUT_DIR", help="folder for the outputs (not IN_DIR)")
    sub.add_argument("--alpha", type=_alpha, nargs="+", default=[0.0], metavar="α",
                     help="one or more α (default 0: x̂0; 1: the input; outside [0, 1] extrapolates)")
    sub.add_argument("--decode", choices=("direct", "residual"), default="direct",
                     help="direct: D(T(E(x*))) (the paper); residual: x* + D(T(E(x*))) - D(E(x*))")
    device_option(sub)
    force_option(sub)
    sub.set_defaults(run=enhance)
    sub._negative_number_matcher = _NEGATIVE_NUMBER   # "--alpha 0 -1e-1": numbers, not options (argparse's own)

    sub = commands.add_parser("evaluate", help="measure output folders against the clean images",
                              description="Pair images by file name (<name>.png, or <name>_a<α>.png grouped per α) "
                              "with the clean images; write metrics.csv, metrics.md and a perception-distortion "
                              "plot (MSE vs SWD).")
    sub.add_argument("--clean", required=True, metavar="DIR", help="folder of the clean (ground-truth) images")
    sub.add_argument("out_dirs", nargs="+", metavar="OUT_DIR", help="folders of images to measure")
    sub.add_argument("-o", "--output", default="evaluation", metavar="DIR",
                     help="report folder (default ./evaluation)")
    device_option(sub)
    force_option(sub)
    sub.set_defaults(run=evaluate)
    return parser


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"dotlib: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dotlib`` with ``argv`` (default: the command line); returns the exit code."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _warning_line
        try:
            from .validate import check_device

            args.device = str(check_device(args.device))
            args.run(args)
        except _USER_ERRORS as error:
            if os.environ.get("DOTLIB_TRACEBACK"):
                raise
            message = " ".join(str(error).split())
            print(f"dotlib {args.command}: error: {message}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"dotlib {args.command}: interrupted", file=sys.stderr)
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
