"""Batch reproduction: resumable steps, failures isolated, missing assets stop at once."""

import json
import math
import os
import time
from pathlib import Path

import nbformat
import pytest

from dotlib.reproduce import Asset, expand, load_study, main, missing_assets, run_study

ROOT = Path(__file__).resolve().parents[1]


def _notebook(path: Path, body: str, parameters: str = "value = 1\nout = 'out.txt'") -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    parameters = nbformat.v4.new_code_cell(parameters)
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


def test_only_the_selected_steps_assets_are_checked(study_dir):
    """An asset named by one step's parameters stops that step's runs, not another step's."""
    (study_dir / "study.yaml").write_text(
        "name: tiny\n"
        "assets:\n"
        "  - {kind: folder, path: nowhere/ddrm, what: DDRM outputs, how: run DDRM}\n"
        "steps:\n"
        "  ddrm:\n"
        "    notebook: write.ipynb\n"
        "    output: results/ddrm.ipynb\n"
        "    parameters: {value: 1, out: nowhere/ddrm/x.txt}\n"
        "  plain:\n"
        "    notebook: write.ipynb\n"
        "    output: results/plain.ipynb\n"
        "    parameters: {value: 2, out: results/plain.txt}\n")
    study = load_study(study_dir / "study.yaml")
    assert _statuses(run_study(study, only=["plain"])) == {"plain": "ran"}
    for only in (["ddrm"], None):
        with pytest.raises(SystemExit, match="nowhere/ddrm"):
            run_study(study, only=only)


def test_nproc_sets_every_step_that_has_one(study_dir, monkeypatch):
    from dotlib.reproduce.command import set_nproc

    study = load_study(study_dir / "study.yaml")
    with pytest.raises(ValueError, match="no step of study 'tiny' has an nproc parameter"):
        set_nproc(study, 8)
    monkeypatch.chdir(ROOT)
    paper = load_study(ROOT / "studies/paper.yaml")
    names = set_nproc(paper, 8)
    assert len(names) >= 6 and all(paper.steps[name].parameters["nproc"] == 8 for name in names)
    with pytest.raises(ValueError, match="positive integer"):
        set_nproc(paper, 0)
    assert "--nproc $(NPROC)" in (ROOT / "Makefile").read_text()


def test_paper_study_offline_lists_every_missing_asset(monkeypatch, tmp_path):
    import torch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in list(os.environ):
        if name.startswith("DOTLIB_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DOTLIB_INCEPTION_PATH", str(tmp_path / "no-inception"))   # surely absent
    monkeypatch.setenv("DOTLIB_LPIPS_VGG", str(tmp_path / "no-vgg16.pth"))
    began = time.perf_counter()
    with pytest.raises(SystemExit) as stop:
        main([str(ROOT / "studies/paper.yaml")])
    assert time.perf_counter() - began < 60    # at once: no step started
    message = str(stop.value)
    required, optional = message.split("also missing, optional")
    assert "stabilityai/sd-vae-ft-ema" in required and "hf download" in required
    assert "huggingface-cli download" not in message
    assert "ImageNet validation" in required and "at least max(2, nproc) image files" in required
    assert "ImageNet train" in required and "at least 32 image files" in required and "DOTLIB_IMAGENET_TRAIN" in required
    for name in ("SwinIR-M_x4.pth", "SwinIR-M_jpeg10.pth", "sigma50.pth", "Swin2SR_CompressedSR_X4_48.pth",
                 "RRDB_ESRGAN_x4.pth"):
        assert name in required
    assert "DIV2K_valid_HR.zip" in required and "Swin2SR_CompressedSR_X4_DIV2K_Valid.zip" in required
    for folder in ("assets/ddrm/original", "assets/ddrm/degraded", "assets/ddrm/ddrm"):   # DDRM's saved results
        assert folder in required
    assert ("a CUDA GPU" in required) is not torch.cuda.is_available()
    assert f"{tmp_path}/no-inception/inception-2015-12-05.pt" in optional and "nvlabs-fi-cdn" in optional
    assert f"{tmp_path}/no-vgg16.pth" in optional and "vgg16-397923af.pth" in optional
    assert "no step was run" in message
    assert message.count("how:") == message.count("where:") >= 9


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


# ------------------------------------------------------------ study files are checked


STEP = "    notebook: write.ipynb\n    output: results/first.ipynb\n"


@pytest.mark.parametrize("text, match", [
    ("parametres: {}\nsteps:\n  first:\n" + STEP,
     r"unknown key 'parametres'.*known keys: assets, jobs, name, steps"),
    ("steps:\n  first:\n" + STEP + "    ouputs: [x.csv]\n",
     r"step 'first': unknown key 'ouputs' \(did you mean 'outputs'\?\); known keys: inputs, notebook, output, "
     r"outputs, parameters"),
    ("steps:\n  first:\n" + STEP + "  first:\n" + STEP,
     r"duplicate key 'first' \(first given on line 2"),
    ("steps:\n  first:\n" + STEP + "    parameters: {value: 1, value: 2}\n", "duplicate key 'value'"),
    ("steps:\n  first:\n" + STEP + "    outputs: results/x.csv\n", r"step 'first': 'outputs' must be a list"),
    ("steps:\n  first:\n" + STEP + "    parameters: [value, 1]\n", r"step 'first': 'parameters' must be a mapping"),
    ("jobs: two\nsteps:\n  first:\n" + STEP, "'jobs' must be an integer"),
    ("steps:\n  first:\n    output: results/first.ipynb\n", r"step 'first' lacks 'notebook'"),
    ("assets:\n  - {kind: disk, path: x, what: y, how: z}\nsteps:\n  first:\n" + STEP,
     "asset 1: kind must be one of file, folder, huggingface, cuda"),
    ("assets:\n  - {kind: folder, path: x, what: y, how: z, min_file: 3}\nsteps:\n  first:\n" + STEP,
     r"asset 1: unknown key 'min_file' \(did you mean 'min_files'\?\); known keys: how, kind, min_files, "
     r"optional, path, what"),
    ("assets:\n  - {kind: folder, path: x, what: y, how: z, min_files: many}\nsteps:\n  first:\n" + STEP,
     "asset 1: 'min_files' must be an integer"),
    ("assets:\n  - {kind: folder, path: x, what: y, how: z, min_files: 0}\nsteps:\n  first:\n" + STEP,
     "asset 1: 'min_files' must be a positive integer on a folder asset"),
    ("assets:\n  - {kind: file, path: x, what: y, how: z, min_files: 3}\nsteps:\n  first:\n" + STEP,
     "'min_files' must be a positive integer on a folder asset, got 3 on a file asset"),
    ("assets:\n  - {kind: file, path: x, what: y, how: z, optional: maybe}\nsteps:\n  first:\n" + STEP,
     "asset 1: 'optional' must be true or false"),
    ("assets:\n  - {kind: cuda, path: x, what: y, how: z}\nsteps:\n  first:\n" + STEP,
     "asset 1: a cuda asset has no 'path'"),
    ("assets:\n  - {kind: file, what: y, how: z}\nsteps:\n  first:\n" + STEP, "asset 1 lacks 'path'"),
    ("assets:\n  - {kind: file, path: x, how: z}\nsteps:\n  first:\n" + STEP, "asset 1 lacks 'what'"),
])
def test_study_files_are_checked_against_the_schema(study_dir, text, match):
    (study_dir / "bad.yaml").write_text(text)
    with pytest.raises(ValueError, match=match):
        load_study(study_dir / "bad.yaml")


def test_anchors_and_merge_keys_are_allowed(study_dir):
    (study_dir / "anchors.yaml").write_text(
        "x-common: &common {value: 3, out: results/a.txt}\n"
        "steps:\n  first:\n" + STEP + "    parameters: {<<: *common, value: 4}\n")
    assert load_study(study_dir / "anchors.yaml").steps["first"].parameters == {"value": 4, "out": "results/a.txt"}


def test_study_parameters_are_typed_as_the_notebook_declares_them(tmp_path) -> None:
    """Cases of issue #18: a string where a list or a number is expected, true for a number, YAML's
    unquoted 1e-5 (a string in YAML 1.1), None where the annotation allows it; outputs outside."""
    from dotlib.reproduce import check_parameters
    from dotlib.reproduce.parameters import parameter_types

    toy, task = "notebooks/01_toy_gaussian.ipynb", "notebooks/03_restore_task.ipynb"
    assert parameter_types(task)["eps"] == "Optional[float]" and parameter_types(toy)["fewshot_sizes"] == "list[int]"
    with pytest.raises(ValueError, match=r"'fewshot_sizes' .* must be list\[int\], got str '64'"):
        check_parameters(toy, {"fewshot_sizes": "64"})
    with pytest.raises(ValueError, match=r"'noise_std' .* must be float, got bool True: true/false is a boolean"):
        check_parameters(toy, {"noise_std": True})
    import yaml

    eps = yaml.safe_load("eps: 1e-5")["eps"]
    with pytest.raises(ValueError, match=r"YAML reads 1e-5 as a string .* so write 1e-05"):
        check_parameters(task, {"eps": eps})
    check_parameters(task, {"eps": None, "max_eval": 20, "alpha_step": 1, "ablation_splits": []})
    with pytest.raises(ValueError, match=r"'max_eval' .* must be Optional\[int\], got float 20.0"):
        check_parameters(task, {"max_eval": 20.0})
    (tmp_path / "n.ipynb").write_text((Path(toy)).read_text())
    (tmp_path / "s.yaml").write_text("steps:\n  a: {notebook: n.ipynb, output: ../../x.ipynb}\n")
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        with pytest.raises(ValueError, match=r"step 'a': output '../../x.ipynb' lies outside"):
            load_study(tmp_path / "s.yaml")
    finally:
        os.chdir(cwd)


def test_a_notebook_refuses_what_papermill_injects_but_it_does_not_declare() -> None:
    """papermill warns about an unknown -p and runs the defaults; the notebooks stop in one line."""
    from dotlib.reproduce import check_kernel_parameters

    cells = json.loads(Path("notebooks/03_restore_task.ipynb").read_text())["cells"]
    parameters = next("".join(c["source"]) for c in cells if "parameters" in c["metadata"].get("tags", []))
    history = ["", parameters, "# Parameters\nn_fitt = 8\nsize = 64\n", ""]
    with pytest.raises(ValueError, match=r"'n_fitt' \(did you mean 'n_fit'\?\) is not declared"):
        check_kernel_parameters({"In": history, "n_fitt": 8, "size": 64}, "03_restore_task.ipynb")
    history[2] = "# Parameters\nsize = '64'\n"
    with pytest.raises(ValueError, match=r"'size' .* must be int, got str '64'"):
        check_kernel_parameters({"In": history, "size": "64"}, "03_restore_task.ipynb")
    check_kernel_parameters({"In": ["", parameters, "run = 1\n"], "run": 1}, "03_restore_task.ipynb")   # a hand run


@pytest.mark.parametrize("notebook", sorted(Path("notebooks").glob("*.ipynb")), ids=lambda path: path.name)
def test_papermill_reads_the_parameters_the_notebook_declares(notebook) -> None:
    """papermill's own reading of a parameters cell (``--help-notebook``; a name it does not find is
    "Passed unknown parameter") finds every declared parameter, the optional ones included."""
    import papermill

    from dotlib.reproduce import notebook_parameters

    assert set(papermill.inspect_notebook(str(notebook))) == set(notebook_parameters(notebook))


def test_optional_annotations_are_checked_like_unions() -> None:
    from dotlib.reproduce.parameters import parameter_types
    from dotlib.validate import of_type

    assert parameter_types("notebooks/03_restore_task.ipynb")["max_eval"] == "Optional[int]"
    assert of_type(None, "Optional[int]") and of_type(3, "Optional[int]") and of_type([0.5], "Optional[list[float]]")
    assert not of_type("3", "Optional[int]") and not of_type(True, "Optional[int]")


def test_notebook_parameters_are_checked_before_anything_runs(study_dir):
    from dotlib.reproduce import check_parameters, notebook_parameters

    notebook = study_dir / "write.ipynb"
    assert notebook_parameters(notebook) == {"value": 1, "out": "out.txt"}
    check_parameters(notebook, {"value": 3, "out": "x.txt"})
    with pytest.raises(ValueError, match=r"'valeu' \(did you mean 'value'\?\) is not declared .*are: out, value"):
        check_parameters(notebook, {"valeu": 3})
    with pytest.raises(ValueError, match=r"'value' .* must be int, got str '7': write it without quotes"):
        check_parameters(notebook, {"value": "7"})
    untagged = nbformat.v4.new_notebook()
    untagged.cells = [nbformat.v4.new_code_cell("value = 1")]
    nbformat.write(untagged, study_dir / "untagged.ipynb")
    with pytest.raises(ValueError, match="no cell tagged 'parameters'"):
        check_parameters(study_dir / "untagged.ipynb", {"value": 2})

    text = (study_dir / "study.yaml").read_text()
    (study_dir / "study.yaml").write_text(text.replace("{value: 8, out: results/second.txt}",
                                                       "{value: 8, output: results/second.txt}"))
    with pytest.raises(ValueError, match=r"step 'second': parameter 'output' \(did you mean 'out'\?\)"):
        run_study(load_study(study_dir / "study.yaml"))
    assert not (study_dir / "results").exists()  # nothing ran, not even the good steps


def _alive(pid: int) -> bool:
    psutil = pytest.importorskip("psutil")
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_sigterm_stops_the_papermill_processes(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "pyproject.toml").write_text("")  # a project root for main()
    (tmp_path / "dotlib").mkdir()
    _notebook(tmp_path / "nap.ipynb", "import os, time\nfrom pathlib import Path\n"
                                      "Path(out).write_text(f'{os.getpid()} {os.getppid()}')\ntime.sleep(300)")
    (tmp_path / "study.yaml").write_text(
        "name: nap\nsteps:\n  nap: {notebook: nap.ipynb, output: results/nap.ipynb, parameters: {out: pids.txt}}\n")
    runner = subprocess.Popen([sys.executable, "-m", "dotlib.reproduce", str(tmp_path / "study.yaml")],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        began = time.monotonic()
        while not (tmp_path / "pids.txt").is_file() or not (tmp_path / "pids.txt").read_text():
            assert runner.poll() is None, runner.stdout.read()
            assert time.monotonic() - began < 120, "the notebook did not start"
            time.sleep(0.2)
        kernel, papermill = map(int, (tmp_path / "pids.txt").read_text().split())
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=60) == 143
        assert "terminated" in runner.stdout.read()
        deadline = time.monotonic() + 30
        while (_alive(kernel) or _alive(papermill)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(papermill) and not _alive(kernel)
    finally:
        if runner.poll() is None:
            runner.kill()


def test_verify_reports_exactly_the_file_edited_by_hand(tmp_path):
    from dotlib.verify import compare_results

    committed, fresh = tmp_path / "committed", tmp_path / "fresh"
    for root in (committed, fresh):
        (root / "tables").mkdir(parents=True)
        (root / "tables" / "a.csv").write_text("x,y\n1.23457,0.5\n2,nan\n")
        (root / "tables" / "b.csv").write_text("x\n3\n")
        (root / "tables" / "main.md").write_text("| a |\n")
        (root / ".stamps").mkdir()
        (root / ".stamps" / "step.json").write_text(f'{{"seconds": {len(str(root))}}}')
    assert compare_results(committed, fresh) == {}
    (fresh / "tables" / "a.csv").write_text("x,y\n1.23458,0.5\n2,nan\n")    # a rounding edge: agrees
    assert compare_results(committed, fresh) == {}
    (committed / "tables" / "b.csv").write_text("x\n3.1\n")                 # edited by hand
    assert list(compare_results(committed, fresh)) == ["tables/b.csv"]
    assert "x, row 0: 3.1 -> 3" in compare_results(committed, fresh)["tables/b.csv"]
    (fresh / "tables" / "main.md").write_text("| b |\n")
    assert sorted(compare_results(committed, fresh)) == ["tables/b.csv", "tables/main.md"]


def test_an_output_changed_after_its_step_ran_makes_it_run_again(study_dir, capsys):
    study = load_study(study_dir / "study.yaml")
    run_study(study, only=["first"])
    assert _statuses(run_study(study, only=["first"])) == {"first": "skipped"}
    (study_dir / "results/first.txt").write_text("edited by hand")
    capsys.readouterr()
    assert _statuses(run_study(study, only=["first"])) == {"first": "ran"}
    assert "outputs changed since the step ran (results/first.txt)" in capsys.readouterr().out
    assert (study_dir / "results/first.txt").read_text() == "7"
    assert _statuses(run_study(study, only=["first"])) == {"first": "skipped"}


# ------------------------------------------------------------ assets: schema, checks, messages


def test_assets_with_every_key_are_loaded(study_dir, monkeypatch):
    monkeypatch.setenv("DOTLIB_TEST_DATA", str(study_dir / "photos"))
    (study_dir / "assets.yaml").write_text(
        "assets:\n"
        "  - {kind: folder, path: \"${DOTLIB_TEST_DATA}\", min_files: 2, what: photos, how: copy them}\n"
        "  - {kind: file, path: \"${DOTLIB_TEST_UNSET:-${DOTLIB_TEST_DATA}/..}/w.pt\", optional: true,\n"
        "     what: w, how: get}\n"
        "  - {kind: cuda, what: a GPU, how: use one}\n"
        "steps:\n  first:\n" + STEP)
    folder, weights, gpu = load_study(study_dir / "assets.yaml").assets
    assert folder == Asset("folder", str(study_dir / "photos"), "photos", "copy them", min_files=2)
    assert weights.path == f"{study_dir}/photos/../w.pt" and weights.optional and weights.min_files is None
    assert gpu.kind == "cuda" and gpu.path == "" and not gpu.optional


def test_min_files_counts_images_as_image_folder_does(tmp_path):
    from dotlib.data import ImageFolder
    from dotlib.reproduce import image_files

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for name in ("one.png", "a/two.JPG", "a/b/three.webp", ".hidden/four.png", "a/.five.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert image_files(tmp_path) == ImageFolder(tmp_path).files
    assert [p.name for p in image_files(tmp_path)] == ["three.webp", "two.JPG", "one.png"]
    assert Asset("folder", str(tmp_path), "photos", "copy", min_files=3).is_present()
    short = Asset("folder", str(tmp_path), "photos", "copy", min_files=4)
    assert not short.is_present()
    assert short.problem() == "holds 3 image file(s), at least 4 are needed"
    assert "(holds 3 image file(s), at least 4 are needed)" in short.describe()
    assert Asset("folder", str(tmp_path), "photos", "copy").is_present()   # no min_files: not empty


def test_a_file_asset_may_be_named_through_a_variable_holding_the_file_or_its_folder(tmp_path, monkeypatch):
    (tmp_path / "inception-2015-12-05.pt").write_bytes(b"weights")
    for value in (str(tmp_path), str(tmp_path / "inception-2015-12-05.pt")):
        monkeypatch.setenv("DOTLIB_TEST_INCEPTION", value)
        asset = Asset("file", expand("${DOTLIB_TEST_INCEPTION:-/tmp}/inception-2015-12-05.pt"), "w", "get")
        assert asset.is_present() and asset.file_path() == tmp_path / "inception-2015-12-05.pt"
    assert not Asset("file", str(tmp_path / "other.pt" / "inception-2015-12-05.pt"), "w", "get").is_present()


def test_every_missing_required_asset_is_listed_and_optional_ones_only_warn(study_dir, capsys):
    text = (study_dir / "study.yaml").read_text()
    (study_dir / "photos").mkdir()
    (study_dir / "photos" / "one.png").write_bytes(b"x")
    (study_dir / "study.yaml").write_text(
        text + "assets:\n"
        "  - {kind: file, path: metric.pt, optional: true, what: metric weights (FID is skipped), how: wget it}\n"
        "  - {kind: folder, path: photos, min_files: 1, what: photos, how: copy}\n")
    summary = run_study(load_study(study_dir / "study.yaml"), only=["first"])
    assert _statuses(summary) == {"first": "ran"}
    out = capsys.readouterr().out
    assert "1 optional asset(s) missing" in out and "metric weights (FID is skipped)" in out and "wget it" in out

    (study_dir / "study.yaml").write_text(
        text + "assets:\n"
        "  - {kind: file, path: metric.pt, optional: true, what: metric weights, how: wget it}\n"
        "  - {kind: folder, path: photos, min_files: 2, what: photos, how: copy more}\n"
        "  - {kind: file, path: nowhere/model.pth, what: a checkpoint, how: download it}\n"
        "  - {kind: huggingface, path: nowhere/vae, what: a VAE, how: hf download}\n")
    with pytest.raises(SystemExit) as stop:
        run_study(load_study(study_dir / "study.yaml"))
    message = str(stop.value)
    required, optional = message.split("also missing, optional")
    assert "3 asset(s) missing" in required
    assert "where: photos (holds 1 image file(s), at least 2 are needed)\n    how: copy more" in required
    assert "where: nowhere/model.pth\n    how: download it" in required
    assert "a VAE" in required and "hf download" in required
    assert "metric weights" in optional and "wget it" in optional
    assert not (study_dir / "results/broken.failed.ipynb").exists()   # no step ran


def test_expand_nested_defaults(monkeypatch):
    for name in ("DOTLIB_TEST_A", "DOTLIB_TEST_B", "DOTLIB_TEST_UNSET"):
        monkeypatch.delenv(name, raising=False)
    nested = "${DOTLIB_TEST_A:-${DOTLIB_TEST_B:-~/.cache}/torch}/hub/x.pth"
    assert expand(nested) == "~/.cache/torch/hub/x.pth"
    monkeypatch.setenv("DOTLIB_TEST_B", "/b")
    assert expand(nested) == "/b/torch/hub/x.pth"
    monkeypatch.setenv("DOTLIB_TEST_A", "/a")
    assert expand(nested) == "/a/hub/x.pth"
    assert expand("${DOTLIB_TEST_A:-${DOTLIB_TEST_UNSET}}") == "/a"   # an unused default is not needed
    with pytest.raises(KeyError, match="DOTLIB_TEST_UNSET"):
        expand("${DOTLIB_TEST_UNSET:-${DOTLIB_TEST_UNSET}}")
    assert expand("${DOTLIB_TEST_UNSET:-}x") == "x" and expand("$HOME {x}") == "$HOME {x}"
    with pytest.raises(ValueError, match="unclosed"):
        expand("${DOTLIB_TEST_UNSET:-/tmp")


# ------------------------------------------------------------ fingerprints by content


def test_content_digests_are_cached_by_path_size_mtime_and_inode(tmp_path):
    import hashlib

    from dotlib.reproduce import ContentDigests

    weights, cache = tmp_path / "model.pth", tmp_path / "stamps" / "digests.json"
    weights.write_bytes(b"a" * 1000)
    old = time.time_ns() - 10 ** 10
    os.utime(weights, ns=(old, old))
    digests = ContentDigests(cache)
    assert digests.file(weights) == hashlib.sha256(b"a" * 1000).hexdigest()
    digests.save()
    entries = json.loads(cache.read_text())
    assert list(entries) == [f"file:{weights.resolve()}"]
    entries[f"file:{weights.resolve()}"]["sha256"] = "from the cache"
    cache.write_text(json.dumps(entries))
    assert ContentDigests(cache).file(weights) == "from the cache"          # not read again
    weights.write_bytes(b"b" * 1000)                                         # same size, new mtime
    assert ContentDigests(cache).file(weights) == hashlib.sha256(b"b" * 1000).hexdigest()
    fresh = tmp_path / "fresh.pth"
    fresh.write_bytes(b"new")                                                # written just now: not cached
    digests = ContentDigests(cache)
    digests.file(fresh)
    digests.save()
    assert f"file:{fresh.resolve()}" not in json.loads(cache.read_text())
    cache.write_text("{not json")
    assert ContentDigests(cache).file(weights) == hashlib.sha256(b"b" * 1000).hexdigest()   # rebuilt

    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.png").write_bytes(b"12")
    first = ContentDigests().folder(folder)
    (folder / "sub" / "a.png").write_bytes(b"34")          # same name and size: not seen (documented)
    assert ContentDigests().folder(folder) == first
    (folder / "sub" / "a.png").write_bytes(b"345")
    assert ContentDigests().folder(folder) != first
    (folder / "sub" / "a.png").rename(folder / "sub" / "b.png")
    assert ContentDigests().folder(folder) != first


def test_huggingface_folders_are_fingerprinted_by_their_weights(tmp_path):
    from dotlib.encoders import weights_fingerprint
    from dotlib.reproduce import ContentDigests

    vae = tmp_path / "vae"
    vae.mkdir()
    (vae / "config.json").write_text("{}")
    (vae / "diffusion_pytorch_model.safetensors").write_bytes(b"w" * 64)
    asset = Asset("huggingface", str(vae), "a VAE", "hf download")
    assert asset.is_present() and asset.huggingface_folder() == vae
    assert ContentDigests().asset(asset) == weights_fingerprint(vae)
    (vae / "config.json").write_text('{"a": 1}')        # the config is not the weights
    assert ContentDigests().asset(asset) == weights_fingerprint(vae)
    (vae / "diffusion_pytorch_model.safetensors").write_bytes(b"v" * 64)
    assert ContentDigests().asset(asset) == weights_fingerprint(vae) != "missing"
    assert ContentDigests().asset(Asset("huggingface", str(tmp_path / "none"), "x", "y")) == "missing"
    assert ContentDigests().asset(Asset("cuda", "", "a GPU", "use one")) is None


@pytest.fixture()
def fixed_code(monkeypatch):
    """A constant ``dotlib`` code digest: these tests re-run studies and must see only their own changes."""
    monkeypatch.setattr("dotlib.reproduce.schedule.code_digest", lambda: "fixed")


@pytest.fixture()
def content_study(tmp_path, monkeypatch, fixed_code):
    monkeypatch.chdir(tmp_path)
    _notebook(tmp_path / "copy.ipynb", "from pathlib import Path\nPath(out).parent.mkdir(parents=True, exist_ok=True)\n"
              "Path(out).write_text(Path(checkpoint).read_text() if checkpoint\n"
              "                     else str(len(list(Path(data).iterdir()))))",
              parameters="checkpoint = None\ndata = None\nout = 'out.txt'")
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights/model.pth").write_text("version 1")
    old = time.time() - 60   # not "just written": ContentDigests does not cache a file modified < 2 s ago
    os.utime(tmp_path / "weights/model.pth", (old, old))
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos/one.png").write_bytes(b"x")
    (tmp_path / "study.yaml").write_text(
        "name: content\njobs: 2\n"
        "assets:\n"
        "  - {kind: folder, path: photos, min_files: 1, what: photos, how: copy}\n"
        "  - {kind: file, path: metric.pt, optional: true, what: metric weights, how: wget}\n"
        "steps:\n"
        "  fit:\n"
        "    notebook: copy.ipynb\n"
        "    output: results/fit/fit.ipynb\n"
        "    parameters: {checkpoint: weights/model.pth, out: results/fit/out.txt}\n"
        "    outputs: [results/fit/out.txt]\n"
        "  count:\n"
        "    notebook: copy.ipynb\n"
        "    output: results/count/count.ipynb\n"
        "    parameters: {data: photos, out: results/count/out.txt}\n"
        "    outputs: [results/count/out.txt]\n")
    return tmp_path


def test_replacing_a_checkpoint_at_the_same_path_reruns_the_step(content_study, capsys):
    study = load_study(content_study / "study.yaml")
    assert _statuses(run_study(study)) == {"fit": "ran", "count": "ran"}
    assert _statuses(run_study(study)) == {"fit": "skipped", "count": "skipped"}
    cache = json.loads((content_study / "results/.stamps/digests.json").read_text())
    assert f"file:{(content_study / 'weights/model.pth').resolve()}" in cache   # hashed once, then cached
    stamp = json.loads((content_study / "results/.stamps/content/fit.json").read_text())
    assert "parameter checkpoint weights/model.pth" in stamp["contents"]
    assert "asset folder photos" not in stamp["contents"]      # named by the other step's parameters only
    assert stamp["contents"]["asset file metric.pt"] == "missing"   # named by none: every step's

    (content_study / "weights/model.pth").write_text("version 2")      # same path, same size
    capsys.readouterr()
    assert _statuses(run_study(study)) == {"fit": "ran", "count": "skipped"}
    assert "content changed since the step ran (parameter checkpoint weights/model.pth)" in capsys.readouterr().out
    assert (content_study / "results/fit/out.txt").read_text() == "version 2"
    assert _statuses(run_study(study)) == {"fit": "skipped", "count": "skipped"}

    (content_study / "photos/two.png").write_bytes(b"y")                 # the folder asset of `count`
    assert _statuses(run_study(study)) == {"fit": "skipped", "count": "ran"}
    assert (content_study / "results/count/out.txt").read_text() == "2"

    (content_study / "metric.pt").write_bytes(b"weights")                # an optional asset appears
    assert _statuses(run_study(study)) == {"fit": "ran", "count": "ran"}
    assert _statuses(run_study(study)) == {"fit": "skipped", "count": "skipped"}


def test_files_a_step_writes_are_not_fingerprinted_as_parameters(study_dir, fixed_code):
    from dotlib.reproduce import ContentDigests, step_contents

    study = load_study(study_dir / "study.yaml")
    run_study(study, only=["first", "second"])
    assert (study_dir / "results/second.txt").is_file()
    for step in study.steps.values():
        assert step_contents(study, step, ContentDigests()) == {}
    assert _statuses(run_study(study, only=["first", "second"])) == {"first": "skipped", "second": "skipped"}


# ------------------------------------------------------------ a failed step stops its readers


def test_globs_overlap():
    from dotlib.reproduce import globs_overlap

    assert globs_overlap("results/tasks/*/metrics.csv", "results/tasks/sr4__mse_net/**")
    assert globs_overlap("results/tasks/*/metrics.csv", "results/tasks/sr4__mse_net/*")
    assert globs_overlap("results/tasks/*/metrics.csv", "results/**")
    assert globs_overlap("results/*.txt", "results/first.txt")
    assert globs_overlap("./results/a/../first.txt", "results/first.txt")
    assert not globs_overlap("results/tasks/*/metrics.csv", "results/operators/**")
    assert not globs_overlap("results/tasks/*/metrics.csv", "results/tasks/sr4/theory.csv")
    assert not globs_overlap("results/tasks/*/metrics.csv", "results/tasks/metrics.csv")
    assert not globs_overlap("results/tables/main.*", "results/tables/pd_*")
    assert not globs_overlap("results/first.txt", "results/broken.ipynb")


def test_a_failed_step_stops_the_steps_that_read_its_outputs(tmp_path, monkeypatch, capsys):
    from dotlib.reproduce import format_summary

    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("")  # a project root for main()
    (tmp_path / "dotlib").mkdir()
    _notebook(tmp_path / "write.ipynb", "from pathlib import Path\n"
                                        "Path(out).parent.mkdir(parents=True, exist_ok=True)\n"
                                        "Path(out).write_text(str(value))")
    _notebook(tmp_path / "fail.ipynb", "raise RuntimeError('deliberate failure')")
    (tmp_path / "study.yaml").write_text(
        "name: chain\nsteps:\n"
        "  task_a: {notebook: fail.ipynb, output: results/tasks/a/run.ipynb}\n"
        "  task_b: {notebook: write.ipynb, output: results/tasks/b/run.ipynb,\n"
        "           parameters: {value: 1, out: results/tasks/b/metrics.csv}}\n"
        "  summary: {notebook: write.ipynb, output: results/summary.ipynb,\n"
        "            parameters: {value: 2, out: results/summary.txt},\n"
        "            inputs: ['results/tasks/*/metrics.csv'], outputs: [results/summary.txt]}\n"
        "  report: {notebook: write.ipynb, output: results/report.ipynb,\n"
        "           parameters: {value: 3, out: results/report.txt},\n"
        "           inputs: [results/summary.txt]}\n"
        "  b_only: {notebook: write.ipynb, output: results/b_only.ipynb,\n"
        "           parameters: {value: 4, out: results/b_only.txt},\n"
        "           inputs: ['results/tasks/b/*.csv']}\n")
    summary = run_study(load_study(tmp_path / "study.yaml"))
    assert _statuses(summary) == {"task_a": "failed", "task_b": "ran", "summary": "blocked", "report": "blocked",
                                  "b_only": "ran"}
    out = capsys.readouterr().out
    assert "summary: skipped: depends on failed step task_a" in out
    assert "report: skipped: depends on failed step task_a (through summary, not run)" in out
    assert not (tmp_path / "results/summary.txt").exists() and (tmp_path / "results/b_only.txt").read_text() == "4"
    table = format_summary(summary)
    assert "-> skipped: depends on failed step task_a" in table and "1 failed, 2 not run" in table
    assert main([str(tmp_path / "study.yaml")]) == 1


# ------------------------------------------------------------ a missing perception metric falls back


def _metric_table(fid=(math.nan, math.nan), swd=(0.1, 0.2), detail=(0.01, 0.02)):
    import pandas as pd

    rows = []
    for k, task in enumerate(("sr4", "awgn50")):
        for signal, alpha in (("x", math.nan), ("xe", math.nan), ("y", math.nan), ("x_star", math.nan),
                              ("x_alpha", 0.0), ("x_alpha", 0.5)):
            rows.append({"task": task, "restorer": "mse_net", "signal": signal, "alpha": alpha, "psnr": 25.0,
                         "fid": fid[k], "swd": swd[k], "detail": detail[k]})
    return pd.DataFrame(rows)


def test_a_perception_index_without_values_falls_back_and_says_so():
    from dotlib import tables

    assert tables.perception_index(_metric_table(), "swd") == ("swd", None)
    assert tables.perception_index(_metric_table(fid=(1.0, 2.0)), "fid") == ("fid", None)
    reason = {"fid": "Inception weights inception-2015-12-05.pt not found (looked at: /tmp). Download it."}
    index, note = tables.perception_index(_metric_table(), "fid", notes=reason)
    assert index == "swd"
    assert note == ("FID has no values in any run, so the perception-distortion planes show SWD instead "
                    "(perception = 'swd', not 'fid'); FID: Inception weights inception-2015-12-05.pt not found "
                    "(looked at: /tmp).")
    index, note = tables.perception_index(_metric_table(fid=(1.0, math.nan)), "fid")
    assert index == "swd" and "FID has no values in awgn50 / mse_net," in note
    assert tables.perception_index(_metric_table().drop(columns="fid"), "fid")[0] == "swd"
    assert tables.perception_index(_metric_table(swd=(math.nan, 0.2)), "fid")[0] == "detail"
    with pytest.raises(ValueError, match="'fid' has no values in awgn50 / mse_net, sr4 / mse_net, nor has any"):
        tables.perception_index(_metric_table(swd=(math.nan,) * 2, detail=(math.nan,) * 2), "fid")


def test_the_fallback_note_is_a_footnote_of_the_tables(tmp_path):
    from dotlib import tables

    note = "FID has no values in any run, so the perception-distortion planes show SWD instead."
    markdown = tables.to_markdown(_metric_table(), caption=note)
    assert markdown.rstrip().endswith(f"Note: {note}")
    assert "Note:" not in tables.to_markdown(_metric_table())
    latex = tables.to_latex(_metric_table(), caption="FID_x: 50% off")
    assert r"\footnotesize Note: FID\_x: 50\% off} \\" in latex
    md, tex = tables.write_tables(_metric_table(), tmp_path, stem="main", caption=note)
    assert f"Note: {note}" in md.read_text() and "Note: FID has no values" in tex.read_text()


@pytest.mark.slow
def test_notebook_04_falls_back_to_swd_when_fid_has_no_values(tmp_path, monkeypatch):
    """The final step with ``perception: fid`` and no FID values (no Inception weights): it runs,
    plots SWD, and says so in its output, the table's footnote and the planes' caption."""
    import pandas as pd

    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("")  # the notebook's project root
    (tmp_path / "dotlib").symlink_to(ROOT / "dotlib")   # the notebook imports dotlib from its cwd
    source = ROOT / "results/tasks/sr4__mse_net"
    target = tmp_path / "tasks/sr4__mse_net"
    target.mkdir(parents=True)
    for name in ("theory.csv", "ridge.csv", "missing_metrics.json"):
        (target / name).write_bytes((source / name).read_bytes())
    pd.read_csv(source / "metrics.csv").assign(fid=math.nan).to_csv(target / "metrics.csv", index=False)
    (tmp_path / "study.yaml").write_text(
        "name: fallback\nsteps:\n  pd:\n"
        f"    notebook: {ROOT / 'notebooks/04_perception_distortion.ipynb'}\n"
        "    output: out/04.ipynb\n"
        "    parameters: {tasks_glob: tasks/*/metrics.csv, figures_dir: figs, tables_dir: tabs, perception: fid,\n"
        "                 validity_size: null, heldout_tile: null}\n"
        "    inputs: [tasks/*/metrics.csv]\n")
    assert _statuses(run_study(load_study(tmp_path / "study.yaml"))) == {"pd": "ran"}
    executed = nbformat.read(tmp_path / "out/04.ipynb", as_version=4)
    printed = "".join(output.get("text", "") for cell in executed.cells for output in cell.get("outputs", []))
    assert "Note: FID has no values in any run, so the perception-distortion planes show SWD instead" in printed
    assert "Note: FID has no values" in (tmp_path / "tabs/main.md").read_text()
    assert "Note: FID has no values" in (tmp_path / "tabs/main.tex").read_text()
    assert (tmp_path / "figs/pd_caption.md").read_text().startswith("FID has no values in any run")
    assert (tmp_path / "figs/pd_grid.png").is_file() and (tmp_path / "figs/pd_sr4__mse_net.pdf").is_file()


def test_a_step_uses_the_assets_its_parameters_name(study_dir):
    from dotlib.reproduce import ContentDigests, step_contents

    (study_dir / "photos").mkdir()
    (study_dir / "photos" / "a.png").write_bytes(b"x")
    (study_dir / "global.pt").write_bytes(b"w")
    (study_dir / "uses.yaml").write_text(
        "assets:\n"
        "  - {kind: folder, path: photos, what: p, how: h}\n"
        "  - {kind: file, path: global.pt, what: g, how: h}\n"
        "  - {kind: cuda, what: a GPU, how: h}\n"
        "steps:\n"
        "  prefixed: {notebook: write.ipynb, output: results/a/a.ipynb, parameters: {out: 'folder:photos'}}\n"
        "  inside: {notebook: write.ipynb, output: results/b/b.ipynb, parameters: {out: photos/a.png}}\n"
        "  other: {notebook: write.ipynb, output: results/c/c.ipynb, parameters: {out: results/c/x.txt}}\n")
    study = load_study(study_dir / "uses.yaml")
    digests = ContentDigests()
    labels = {name: sorted(step_contents(study, step, digests)) for name, step in study.steps.items()}
    assert labels == {"prefixed": ["asset file global.pt", "asset folder photos"],
                      "inside": ["asset file global.pt", "asset folder photos", "parameter out photos/a.png"],
                      "other": ["asset file global.pt"]}   # cuda has no content; global.pt is named by none


def test_stamps_may_go_elsewhere(study_dir, fixed_code):
    study = load_study(study_dir / "study.yaml")
    assert _statuses(run_study(study, only=["first"], stamp_dir="runs/stamps")) == {"first": "ran"}
    assert (study_dir / "runs/stamps/tiny/first.json").is_file() and not (study_dir / "results/.stamps").exists()
    assert _statuses(run_study(study, only=["first"], stamp_dir="runs/stamps")) == {"first": "skipped"}
    assert _statuses(run_study(study, only=["first"])) == {"first": "ran"}     # no stamp in the default place
