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
     "asset 1: kind must be one of file, folder, huggingface"),
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


def test_notebook_parameters_are_checked_before_anything_runs(study_dir):
    from dotlib.reproduce import check_parameters, notebook_parameters

    notebook = study_dir / "write.ipynb"
    assert notebook_parameters(notebook) == {"value": 1, "out": "out.txt"}
    check_parameters(notebook, {"value": 3, "out": "x.txt"})
    with pytest.raises(ValueError, match=r"'valeu' \(did you mean 'value'\?\) is not declared .*are: out, value"):
        check_parameters(notebook, {"valeu": 3})
    with pytest.raises(ValueError, match=r"'value' .* is the string '7', but its default is the number 1"):
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
    assert "committed 3.1, re-run 3" in compare_results(committed, fresh)["tables/b.csv"]
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
