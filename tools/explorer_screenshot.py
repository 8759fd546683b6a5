"""JupyterLab in a headless browser: the α explorer moved to α = 0.5, and notebook 01 run and saved.

    .venv/bin/python tools/explorer_screenshot.py [--out results/figures/explorer.png]

Needs Chromium (Debian's ``chromium``) and Playwright for Python (``pip install playwright`` in
any venv, run with that venv's python: ``PLAYWRIGHT_PYTHON``, default ``python3``). What it does:

1. writes ``runs/explorer/explorer.ipynb``: an SR ×4 run of the embedded study at a small size
   (``run_task`` on 128² crops, α from −1 to 2 by 0.25) and its :class:`dotlib.explore.AlphaExplorer`;
2. starts JupyterLab on localhost (``make lab``), opens that notebook, runs every cell, presses the right-arrow
   key on the α slider ten times (0 → 0.5 in steps of 0.05) and saves a screenshot of the page;
3. opens ``notebooks/01_toy_gaussian.ipynb``, runs every cell, saves it, and prints
   ``git status --porcelain notebooks/`` (empty: the nbstrip filter keeps notebooks/ clean).

The screenshot is the page as a reader sees it; the numbers in it come from the small run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = Path("runs/explorer/explorer.ipynb")
CELLS = [
    "from dotlib.explore import AlphaExplorer\n"
    "from dotlib.study import default_alphas, run_task\n\n"
    "run = run_task('sr4', size=128, crops_per_photo=1, n_folds=2, ablation_splits=[], decodes=['direct'],\n"
    "               alphas=default_alphas(-1.0, 2.0, 0.25), n_resamples=50)",
    "explorer = AlphaExplorer(run.images, run.table, names=run.photos)\nbox = explorer.widget()\nbox",
]

#: Playwright, run in its own interpreter (it is not one of the project's packages).
BROWSER = r'''
import sys, time
from playwright.sync_api import sync_playwright

url, notebook01, shot = sys.argv[1], sys.argv[2], sys.argv[3]
flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

IDLE = "() => [...document.querySelectorAll('.jp-Notebook-ExecutionIndicator')].every(e => e.dataset.status === 'idle')"

def run_all(page):
    page.wait_for_selector(".jp-Notebook", timeout=120000)
    time.sleep(5)
    page.wait_for_function(IDLE, timeout=120000)
    news = page.get_by_role("button", name="No", exact=True)
    if news.count() and news.first.is_visible():   # JupyterLab's "notified about news?" prompt
        news.first.click()
    page.locator(".jp-Notebook >> visible=true").first.click()
    page.keyboard.press("Escape")
    page.get_by_role("menuitem", name="Run").first.click()
    page.get_by_text("Run All Cells", exact=True).first.click()
    time.sleep(5)
    page.wait_for_function(IDLE, timeout=600000, polling=1000)

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=flags)
    page = browser.new_page(viewport={"width": 1500, "height": 1300})
    page.goto(url)
    run_all(page)
    handle = page.locator(".widget-slider .noUi-handle").first
    handle.wait_for(timeout=120000)
    handle.scroll_into_view_if_needed()
    handle.focus()
    for _ in range(10):
        page.keyboard.press("ArrowRight")
        time.sleep(0.3)
    time.sleep(8)
    readout = page.locator(".widget-readout").first.inner_text()
    page.locator(".widget-vbox").first.scroll_into_view_if_needed()
    page.screenshot(path=shot)
    print("slider readout", readout)
    page.goto(notebook01)
    run_all(page)
    page.keyboard.press("Control+s")
    time.sleep(3)
    browser.close()
'''


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _write_notebook() -> None:
    cells = [{"cell_type": "code", "execution_count": None, "id": f"cell{i}", "metadata": {}, "outputs": [],
              "source": source} for i, source in enumerate(CELLS)]
    notebook = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3 (dotlib)", "language": "python",
                                                            "name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}
    (ROOT / NOTEBOOK).parent.mkdir(parents=True, exist_ok=True)
    (ROOT / NOTEBOOK).write_text(json.dumps(notebook, indent=1) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/figures/explorer.png")
    args = parser.parse_args()
    _write_notebook()
    port, token = _free_port(), "dotlib-explorer"
    lab = subprocess.Popen(["make", "lab", f"LAB_ARGS=--no-browser --port={port} --IdentityProvider.token={token}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, start_new_session=True)
    try:
        time.sleep(8)
        base = f"http://127.0.0.1:{port}/lab/tree"
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
            script.write(BROWSER)
        done = subprocess.run([os.environ.get("PLAYWRIGHT_PYTHON", "python3"), script.name,
                               f"{base}/{NOTEBOOK}?token={token}&reset",
                               f"{base}/notebooks/01_toy_gaussian.ipynb?token={token}",
                               str(ROOT / args.out)], capture_output=True, text=True, timeout=1200)
        print(done.stdout + done.stderr[-3000:])
        if done.returncode != 0:
            return 1
    finally:
        os.killpg(lab.pid, signal.SIGTERM)   # make and the JupyterLab server it started
        lab.wait(timeout=30)
    status = subprocess.run(["git", "status", "--porcelain", "notebooks/"], capture_output=True, text=True, cwd=ROOT)
    print(f"git status --porcelain notebooks/ after running notebook 01 in JupyterLab: {status.stdout.strip() or '(clean)'}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
