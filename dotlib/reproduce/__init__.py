"""Batch reproduction: run a study's notebooks with papermill, resumably.

A study is a YAML file (``studies/embedded.yaml``, ``studies/paper.yaml``)::

    name: embedded
    jobs: 2                      # steps run at once (each in its own papermill process)
    assets:                      # checked before any work; all missing ones are listed at once
      - {kind: folder, path: "${DOTLIB_IMAGENET:-assets/imagenet/val}", min_files: 34, what: "...", how: "..."}
      - {kind: file, path: "${DOTLIB_INCEPTION_PATH:-/tmp}/inception-2015-12-05.pt", optional: true, ...}
    steps:
      toy:
        notebook: notebooks/01_toy_gaussian.ipynb
        output: results/toy/01_toy_gaussian.ipynb
        parameters: {dimension: 16}
        inputs: []               # files (globs) whose content the step depends on
        outputs: [results/toy/estimators.csv]

Assets are what a study needs and cannot download at run time. Each has a ``kind``:
``file``, ``folder`` (``min_files``: the image files it must hold at least, counted
recursively as ``dotlib.data.ImageFolder`` does), ``huggingface`` (a model id in the local
Hugging Face cache, or a local diffusers folder) or ``cuda`` (no path: a GPU that
``torch.cuda.is_available()`` sees); ``what`` it is for and ``how`` to get it. Before any
step runs, every missing required asset is listed at once (what, where, how) and the run
stops; a missing ``optional: true`` asset (a perception metric's weights) is listed as a
warning, and the notebooks skip what needs it. ``${NAME:-default}`` in paths and
parameters is read from the environment (defaults may nest: ``${A:-${B:-x}/y}``).

A step is skipped when its fingerprint — the notebook's code, its parameters, the
``dotlib`` sources and committed weights, its ``inputs``, and the *content* of the assets
and files it uses — equals the one stored after its last successful run, and its outputs
exist unchanged: the stamp records the SHA-256 of every declared output, and an output
edited or overwritten since (a hand run writing into ``results/``) makes the step run again.

Content fingerprints (see :class:`ContentDigests`): a step uses the assets whose expanded path
appears in one of its expanded parameters (or lies inside one, or holds one), and every asset
that no step names in its parameters (those are looked up at fixed places, like the
Inception and VGG16 weights: so every step depends on them, the simple safe choice).
Any other parameter naming an existing file (a ``restorer_checkpoint``) counts too, except
the files steps write (declared outputs, or in a step's output folder). A file counts by
its SHA-256, cached by (resolved path, size, mtime, inode) in ``results/.stamps/digests.json``
so that multi-GB checkpoints are read once; a folder by its sorted relative file names and
sizes (an edit that keeps every name and size is not seen: reading 50 000 ImageNet images
per run would take minutes); a Hugging Face model by its weight files' content
(``dotlib.encoders.weights_fingerprint``); ``cuda`` by nothing. So replacing a checkpoint's
content at the same path re-runs the steps that use it.

A failing step is reported at the end and does not stop the others, except the later steps
whose ``inputs`` can match what it writes (its declared ``outputs``, its output notebook,
and its output folder when no other step writes there): those are not run ("skipped:
depends on failed step X"), nor the steps that depend on them, and the run exits non-zero.
Executed notebooks are written atomically. Up to ``jobs`` steps run at once; a step with
``inputs`` waits for every step before it, whose outputs it may read. Each step's
papermill log is ``runs/reproduce/<study>/<step>.log``.

The YAML is checked before anything runs: unknown or misspelt keys, duplicate keys (steps
of the same name), wrong types, and parameters that a step's notebook does not declare in
its cell tagged ``parameters`` (or strings where the notebook's default is a number) are
errors naming the key and what is known. Top-level keys starting with ``x-`` hold YAML
anchors and are ignored. SIGTERM, like Ctrl-C, stops the papermill processes too.

Run ``python -m dotlib.reproduce studies/embedded.yaml [--only STEP ...] [--force] [--jobs N]``.

The package, one job a module: :mod:`~dotlib.reproduce.spec` (the study file: steps, schema,
notebook parameters, ``${...}`` expansion), :mod:`~dotlib.reproduce.assets` (assets and the
missing-asset report), :mod:`~dotlib.reproduce.digests` (content digests, the one SHA-256 of a
file), :mod:`~dotlib.reproduce.contents` (what a step reads), :mod:`~dotlib.reproduce.outputs`
(what steps write, overlapping globs, failed dependencies, stamps),
:mod:`~dotlib.reproduce.schedule` (papermill processes and :func:`run_study`) and
:mod:`~dotlib.reproduce.command` (the command line; ``__main__`` runs it).
"""

from .assets import Asset, image_files, missing_assets, missing_assets_message
from .command import format_summary, main
from .contents import step_contents
from .digests import DIGEST_CACHE, ContentDigests, code_digest
from .outputs import STAMP_DIR, failed_dependency, globs_overlap
from .schedule import LOG_DIR, STOP_GRACE, StepFailed, Terminated, run_study
from .parameters import check_kernel_parameters, check_parameters, notebook_parameters
from .spec import Step, Study, expand, load_study, preset_parameters

__all__ = ["Asset", "ContentDigests", "Step", "Study", "Terminated", "check_kernel_parameters", "check_parameters", "globs_overlap",
           "image_files", "load_study", "missing_assets", "notebook_parameters", "preset_parameters", "run_study",
           # also imported from here by callers and tests (formerly module-level names of reproduce.py)
           "DIGEST_CACHE", "LOG_DIR", "STAMP_DIR", "STOP_GRACE", "StepFailed", "code_digest", "expand",
           "failed_dependency", "format_summary", "main", "missing_assets_message", "step_contents"]
