"""Batch reproduction: resumable steps, failures isolated, missing assets stop at once."""

import os
from pathlib import Path

import nbformat
import pytest

from dotlib.reproduce import Asset, expand, load_study, main, missing_assets, run_study

ROOT = Path(__file__).resolve().parents[1]


def _notebook(path: Path, body: str) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    parameters = nbformat.v4.new_code_cell("value = 1\nout = 'out.txt'")
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell(body)]
    nbformat.write(notebook, path)


@pytest.fixture()
def study_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _notebook(tmp_path / "write.ipynb", "from pathlib import Path\nPath(out).write_text(str(value))")
    _notebook(tmp_path / "fail.ipynb", "raise RuntimeError('deliberate failure ' + str(value))")
    (tmp_path / "study.yaml").write_text(
        "name: tiny\n"
        "steps:\n"
        "  first:\n"
        "    notebook: write.ipynb\n"
        "    output: results/first.ipynb\n"
        "    parameters: {value: 7, out: results/first.txt}\n"
        "    outputs: [results/first.txt]\n"
        "  broken:\n"
        "    notebook: fail.ipynb\n"
        "    output: results/broken.ipynb\n"
        "  second:\n"
        "    notebook: write.ipynb\n"
        "    output: results/second.ipynb\n"
        "    parameters: {value: 8, out: results/second.txt}\n"
        "    inputs: [results/first.txt]\n"
    )
    return tmp_path


def _statuses(summary):
    return {record["step"]: record["status"] for record in summary}


def test_failures_are_isolated_and_unchanged_steps_are_skipped(study_dir):
    study = load_study(study_dir / "study.yaml")
    summary = run_study(study)
    assert _statuses(summary) == {"first": "ran", "broken": "failed", "second": "ran"}
    assert "deliberate failure" in next(r for r in summary if r["step"] == "broken")["error"]
    assert (study_dir / "results/first.txt").read_text() == "7"
    assert (study_dir / "results/broken.failed.ipynb").is_file()
    assert not list((study_dir / "results").glob(".*partial*"))

    again = run_study(load_study(study_dir / "study.yaml"), only=["first", "second"])
    assert _statuses(again) == {"first": "skipped", "second": "skipped"}

    # a changed input re-runs its consumer only
    (study_dir / "study.yaml").write_text(
        (study_dir / "study.yaml").read_text().replace("{value: 7,", "{value: 9,"))
    changed = run_study(load_study(study_dir / "study.yaml"), only=["first", "second"])
    assert _statuses(changed) == {"first": "ran", "second": "ran"}
    assert (study_dir / "results/first.txt").read_text() == "9"


def test_a_deleted_output_is_rebuilt(study_dir):
    run_study(load_study(study_dir / "study.yaml"), only=["first"])
    (study_dir / "results/first.txt").unlink()
    summary = run_study(load_study(study_dir / "study.yaml"), only=["first"])
    assert _statuses(summary) == {"first": "ran"}


def test_missing_assets_stop_before_any_work(study_dir, capsys):
    text = (study_dir / "study.yaml").read_text()
    (study_dir / "study.yaml").write_text(
        text + "assets:\n"
        "  - {kind: file, path: nowhere/model.pth, what: a checkpoint, how: download it}\n"
        "  - {kind: folder, path: nowhere/images, what: an image folder, how: copy it}\n")
    study = load_study(study_dir / "study.yaml")
    assert [a.path for a in missing_assets(study)] == ["nowhere/model.pth", "nowhere/images"]
    with pytest.raises(SystemExit) as stop:
        run_study(study)
    message = str(stop.value)
    assert "2 asset(s) missing" in message and "nowhere/model.pth" in message and "copy it" in message
    assert not (study_dir / "results").exists()


def test_paper_study_offline_lists_every_missing_asset(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in list(os.environ):
        if name.startswith("DOTLIB_"):
            monkeypatch.delenv(name)
    with pytest.raises(SystemExit) as stop:
        main([str(ROOT / "studies/paper.yaml")])
    message = str(stop.value)
    assert "stabilityai/sd-vae-ft-ema" in message
    assert "ImageNet" in message
    assert message.count("how:") >= 4


def test_unknown_study_and_step_names_are_explained(study_dir):
    with pytest.raises(FileNotFoundError, match="known studies: study"):
        load_study(study_dir / "nope.yaml")
    with pytest.raises(SystemExit, match="steps: first, broken, second"):
        run_study(load_study(study_dir / "study.yaml"), only=["zzz"])


def test_expand_environment_variables(monkeypatch):
    monkeypatch.setenv("DOTLIB_TEST_ROOT", "/data")
    assert expand("${DOTLIB_TEST_ROOT}/val") == "/data/val"
    monkeypatch.delenv("DOTLIB_TEST_ROOT")
    assert expand("${DOTLIB_TEST_ROOT:-assets}/val") == "assets/val"
    with pytest.raises(KeyError, match="DOTLIB_TEST_ROOT"):
        expand("${DOTLIB_TEST_ROOT}/val")
    assert Asset("folder", "/definitely/not/here", "x", "y").is_present() is False


def test_jobs_run_steps_at_once_and_inputs_wait_for_earlier_steps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _notebook(tmp_path / "span.ipynb",
              "import time\nfrom pathlib import Path\nbegan = time.time()\n"
              "seen = sorted(p.name for p in Path('results').glob('*.txt'))\ntime.sleep(value)\n"
              "Path(out).write_text(f'{began} {time.time()} ' + ','.join(seen))")
    (tmp_path / "study.yaml").write_text(
        "name: parallel\njobs: 2\nsteps:\n"
        "  a: {notebook: span.ipynb, output: results/a.ipynb, parameters: {value: 3, out: results/a.txt}}\n"
        "  b: {notebook: span.ipynb, output: results/b.ipynb, parameters: {value: 3, out: results/b.txt}}\n"
        "  c: {notebook: span.ipynb, output: results/c.ipynb, parameters: {value: 0, out: results/c.txt},\n"
        "      inputs: ['results/*.txt']}\n"
    )
    study = load_study(tmp_path / "study.yaml")
    assert study.jobs == 2
    summary = run_study(study)
    assert [r["status"] for r in summary] == ["ran", "ran", "ran"]
    spans = {}
    for name in "abc":
        began, ended, seen = (tmp_path / f"results/{name}.txt").read_text().split(" ")
        spans[name] = (float(began), float(ended), seen)
    (a0, a1, _), (b0, b1, _), (c0, _, c_seen) = spans["a"], spans["b"], spans["c"]
    assert a0 < b1 and b0 < a1            # a and b overlapped
    assert c0 >= max(a1, b1) and c_seen == "a.txt,b.txt"   # c started after both, and saw them
    assert (tmp_path / "runs/reproduce/parallel/a.log").is_file()
    with pytest.raises(ValueError, match="jobs must be a positive integer"):
        (tmp_path / "bad.yaml").write_text("jobs: 0\nsteps:\n  a: {notebook: span.ipynb, output: x.ipynb}\n")
        load_study(tmp_path / "bad.yaml")
