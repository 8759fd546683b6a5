"""Content fingerprints: the SHA-256 of files (the one helper that reads a file for it), of
folder listings and Hugging Face models, cached across runs; and the digest of ``dotlib`` itself."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from ..io import write_text
from ..paths import PACKAGE_DIR
from .assets import Asset

#: The content-digest cache of files, beside the stamps (see :class:`ContentDigests`).
DIGEST_CACHE = "digests.json"


def sha256_file(path: str | Path) -> str:
    """SHA-256 (hex) of a file's content, read in 4 MiB blocks (a multi-GB checkpoint is never
    held in memory at once). Every file hashed for a fingerprint or a stamp goes through here."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


class ContentDigests:
    """Content digests of files, folders and Hugging Face models, for step fingerprints.

    Files: SHA-256 of the content, cached in ``cache_file`` (JSON) by resolved path, size,
    mtime (ns) and inode, so a multi-GB checkpoint is read again only when one of them
    changes; a file modified less than 2 s before it is read is not cached (its mtime could
    be shared by a second write within the file system's timestamp tick). Folders: SHA-256
    of the sorted relative names and sizes of their files (hidden ones skipped), not their
    content (a same-size edit keeping every name is not seen; reading every image of a
    50 000-image folder per run would take minutes). Hugging Face models: the weight files'
    content (:func:`dotlib.encoders.weights_fingerprint`, cached by the folder's listing).
    Every digest is also kept in memory for the run.
    """

    RACY_NS = 2_000_000_000

    def __init__(self, cache_file: str | Path | None = None):
        self.cache_file = None if cache_file is None else Path(cache_file)
        self._cache: dict[str, dict] = {}
        if self.cache_file is not None and self.cache_file.is_file():
            try:
                loaded = json.loads(self.cache_file.read_text(encoding="utf-8"))
                self._cache = {key: value for key, value in loaded.items() if isinstance(value, dict)}
            except (ValueError, OSError, AttributeError):
                self._cache = {}  # a damaged cache is rebuilt
        self._changed = False
        self._memo: dict[tuple, str | None] = {}

    def _cached(self, key: str, signature: list, compute) -> str:
        entry = self._cache.get(key)
        if entry is not None and entry.get("signature") == signature:
            return entry["sha256"]
        digest = compute()
        self._cache[key] = {"signature": signature, "sha256": digest}
        self._changed = True
        return digest

    @staticmethod
    def _signature(path: Path) -> tuple[list, bool]:
        status = path.stat()
        racy = time.time_ns() - status.st_mtime_ns < ContentDigests.RACY_NS
        return [status.st_size, status.st_mtime_ns, status.st_ino], racy

    def file(self, path: str | Path) -> str:
        """SHA-256 (hex) of a file's content."""
        resolved = Path(path).expanduser().resolve()
        signature, racy = self._signature(resolved)
        memo = ("file", str(resolved), *signature)
        if memo not in self._memo:
            if racy:
                self._memo[memo] = sha256_file(resolved)
            else:
                self._memo[memo] = self._cached(f"file:{resolved}", signature, lambda: sha256_file(resolved))
        return self._memo[memo]

    def folder(self, path: str | Path) -> str:
        """SHA-256 (hex) of the sorted relative names and sizes of a folder's files (not their content)."""
        folder = Path(path).expanduser().resolve()
        memo = ("folder", str(folder))
        if memo not in self._memo:
            digest = hashlib.sha256()
            for name, size in _listing(folder):
                digest.update(f"{name}\0{size}\n".encode())
            self._memo[memo] = digest.hexdigest()
        return self._memo[memo]

    def huggingface(self, folder: str | Path) -> str:
        """The weight files' content digest of a diffusers model folder (every file's when it has
        no ``diffusion_pytorch_model*`` or ``*.bin`` weights)."""
        folder = Path(folder).expanduser().resolve()
        memo = ("huggingface", str(folder))
        if memo in self._memo:
            return self._memo[memo]
        signature, racy = [], False
        for name, _ in _listing(folder):
            file_signature, file_racy = self._signature((folder / name).resolve())
            signature.append([name, *file_signature])
            racy = racy or file_racy

        def compute() -> str:
            from ..encoders import weights_fingerprint

            found = weights_fingerprint(folder)
            if found is not None:
                return found
            digest = hashlib.sha256()
            for name, _ in _listing(folder):
                digest.update(f"{name}\0{self.file(folder / name)}\n".encode())
            return digest.hexdigest()

        self._memo[memo] = compute() if racy else self._cached(f"huggingface:{folder}", signature, compute)
        return self._memo[memo]

    def asset(self, asset: Asset) -> str | None:
        """An asset's content digest (by its kind, as above), "missing", or None for ``cuda``."""
        memo = ("asset", asset)
        if memo not in self._memo:
            if asset.kind == "cuda":
                self._memo[memo] = None
            elif not asset.is_present():
                self._memo[memo] = "missing"
            elif asset.kind == "file":
                self._memo[memo] = self.file(asset.file_path())
            elif asset.kind == "folder":
                self._memo[memo] = self.folder(asset.path)
            else:
                self._memo[memo] = self.huggingface(asset.huggingface_folder())
        return self._memo[memo]

    def save(self) -> None:
        """Write the cache if a digest was added (atomically; nothing when there is no cache file)."""
        if self.cache_file is not None and self._changed:
            write_text(json.dumps(self._cache, indent=1, sort_keys=True) + "\n", self.cache_file)
            self._changed = False


def _listing(folder: Path) -> list[tuple[str, int]]:
    """(relative name, size) of every file under ``folder`` (links followed, hidden ones skipped), sorted."""
    found = []
    for root, folders, files in os.walk(folder, followlinks=True):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in files:
            if name.startswith("."):
                continue
            path = Path(root) / name
            try:
                found.append((path.relative_to(folder).as_posix(), path.stat().st_size))
            except OSError:  # a dangling link
                continue
    return sorted(found)


def code_digest() -> str:
    """Hash of every ``dotlib`` source file and committed weight file."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(PACKAGE_DIR)).encode())
            digest.update(bytes.fromhex(sha256_file(path)))
    return digest.hexdigest()
