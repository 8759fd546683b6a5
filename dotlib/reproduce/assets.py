"""What a study needs and cannot download at run time: :class:`Asset`, whether each is on this
machine, and the report that lists every missing one at once (see the package notes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the study file's module imports this one
    from .spec import Study

#: The kinds of asset a study file may declare.
ASSET_KINDS = ("file", "folder", "huggingface", "cuda")


def image_files(folder: str | Path) -> list[Path]:
    """The image files under ``folder`` that ``dotlib.data.ImageFolder`` reads: recursive, its
    suffixes (any case), hidden files and folders skipped; sorted (:func:`dotlib.data.image_files`,
    imported when first needed, so that loading a study does not import torch)."""
    from ..data import image_files as listing

    return listing(folder)


@dataclass(frozen=True)
class Asset:
    """Something a study needs that cannot be downloaded at run time (see the module notes)."""

    kind: str  # "file", "folder", "huggingface" (a model id in the local HF cache, or a folder), "cuda"
    path: str
    what: str
    how: str
    optional: bool = False       # missing: a warning, and the notebooks skip what needs it
    min_files: int | None = None  # folders: image files needed at least (counted by image_files)

    def file_path(self) -> Path:
        """A file asset's path; ``<X>/<name>`` where ``X`` is itself a file called ``<name>`` means
        ``X`` (``${DOTLIB_INCEPTION_PATH:-/tmp}/inception-2015-12-05.pt``: the variable may name
        the file or its folder, as ``dotlib.metrics.inception.inception_file`` accepts)."""
        path = Path(self.path).expanduser()
        if not path.is_file() and path.parent.is_file() and path.parent.name == path.name:
            return path.parent
        return path

    def huggingface_folder(self) -> Path | None:
        """The local folder of a ``huggingface`` asset (its snapshot in the HF cache), None if absent."""
        folder = Path(self.path).expanduser()
        if folder.is_dir():
            return folder if (folder / "config.json").is_file() else None
        from huggingface_hub import try_to_load_from_cache

        try:
            found = try_to_load_from_cache(self.path, "config.json")
        except ValueError:  # not a valid repo id (a folder path that does not exist)
            return None
        return Path(found).parent if isinstance(found, str) else None

    def problem(self) -> str | None:
        """Why the asset cannot be used on this machine ("not found", too few images, ...); None if it can."""
        if self.kind == "file":
            return None if self.file_path().is_file() else "not found"
        if self.kind == "folder":
            folder = Path(self.path).expanduser()
            if not folder.is_dir():
                return "not found"
            if self.min_files is None:
                return None if any(folder.iterdir()) else "the folder is empty"
            count = len(image_files(folder))
            return None if count >= self.min_files else \
                f"holds {count} image file(s), at least {self.min_files} are needed"
        if self.kind == "huggingface":
            return None if self.huggingface_folder() is not None else "not found"
        if self.kind == "cuda":
            import torch

            if torch.cuda.is_available():
                return None
            return "torch.cuda.is_available() is False" + (
                f" (this torch {torch.__version__} is built without CUDA)" if torch.version.cuda is None else "")
        raise ValueError(f"unknown asset kind {self.kind!r}; use {', '.join(ASSET_KINDS)}")

    def is_present(self) -> bool:
        return self.problem() is None

    def location(self) -> str:
        if self.kind == "cuda":
            return "a CUDA GPU on this machine"
        if self.kind == "huggingface" and not Path(self.path).expanduser().is_dir():
            from huggingface_hub.constants import HF_HUB_CACHE

            return f"Hugging Face id {self.path} (cache: {HF_HUB_CACHE})"
        if self.kind == "file":
            return str(self.file_path())
        return str(Path(self.path).expanduser())

    def describe(self) -> str:
        """Two or three indented lines for the missing-assets message: what, where (and why), how."""
        problem = self.problem()
        where = self.location() + (f" ({problem})" if problem and problem != "not found" else "")
        return f"  - {self.what}\n    where: {where}\n    how: {self.how}"


def missing_assets(study: Study, assets: list[Asset] | None = None) -> list[Asset]:
    """The study's assets (or ``assets``: those of the selected steps) that are not on this
    machine (or unusable: a folder with too few images), required and optional ones."""
    return [asset for asset in (study.assets if assets is None else assets) if not asset.is_present()]


def missing_assets_message(study: Study, missing: list[Asset]) -> str | None:
    """The message that stops the study when a required asset is missing (None when none is):
    every missing asset, required ones first, each with what it is for, where and how."""
    required = [asset for asset in missing if not asset.optional]
    if not required:
        return None
    lines = [f"study {study.name!r} cannot start: {len(required)} asset(s) missing (no step was run)"]
    lines += [asset.describe() for asset in required]
    optional = [asset for asset in missing if asset.optional]
    if optional:
        lines.append(f"also missing, optional ({len(optional)}; the study would run without them):")
        lines += [asset.describe() for asset in optional]
    return "\n".join(lines)
