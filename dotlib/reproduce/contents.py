"""What a step reads besides its notebook and inputs: the assets and files its parameters name,
with their content digests, which its fingerprint covers (see the package notes)."""

from __future__ import annotations

from pathlib import Path

from .assets import Asset
from .digests import ContentDigests
from .outputs import normal_path, path_contains, written_by_a_step
from .spec import Step, Study, strings_in


def _uses(step: Step, asset: Asset) -> bool:
    """Whether one of ``step``'s parameters names ``asset``: holds its path (``folder:<path>`` too),
    or names a folder holding it, or a path inside it."""
    if asset.kind == "cuda" or not asset.path:
        return False
    values = [value for value in step.parameter_strings() if value]
    if any(asset.path in value for value in values):
        return True
    target = normal_path(asset.path)
    return any(path_contains(normal_path(value), target) or path_contains(target, normal_path(value))
               for value in values)


def step_assets(study: Study, step: Step) -> list[Asset]:
    """The assets ``step`` uses: those one of its parameters names, and those no step names
    (read from fixed places, like metric weights or the GPU)."""
    named = {asset for asset in study.assets if any(_uses(other, asset) for other in study.steps.values())}
    return [asset for asset in study.assets if asset not in named or _uses(step, asset)]


def step_contents(study: Study, step: Step, digests: ContentDigests) -> dict[str, str]:
    """Label -> content digest of the assets and files ``step`` uses (see the module notes).

    The step's assets: those one of its parameters names, and those no step names (read from
    fixed places, like metric weights). Other parameters naming an existing file that no step
    writes count too (``parameter <name>`` labels, e.g. a ``restorer_checkpoint``).
    """
    contents: dict[str, str] = {}
    for asset in step_assets(study, step):
        digest = digests.asset(asset)
        if digest is not None:
            contents[f"asset {asset.kind} {asset.path}"] = digest
    covered = {normal_path(asset.path) for asset in study.assets if asset.kind != "cuda"}
    for name, value in sorted(step.parameters.items()):
        for index, text in enumerate(strings_in(value)):
            if not text or "\n" in text or len(text) > 4096:
                continue
            path = normal_path(text)
            if path in covered or not Path(path).is_file() or written_by_a_step(study, path):
                continue
            contents[f"parameter {name}{f'[{index}]' if index else ''} {text}"] = digests.file(path)
    return contents
