"""The explorers in a real browser: JupyterLab from this environment + headless Debian Chromium.

A JupyterLab server is started on 127.0.0.1 (a free port, a random token, its own temporary
config/data/runtime/settings/workspaces folders), Chromium is driven by Playwright, and the
server is always stopped again (fixture finalizer). Screenshots land in tests/artifacts/ (git-ignored).

Chromium: /usr/bin/chromium (Debian package; `make test` installs it). A Playwright-downloaded
browser is not used (no network). Without Chromium the tests are skipped with the reason, unless
INFERNET_REQUIRE_BROWSER=1 (set by `make test`), where they fail instead.
"""
from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
NOTEBOOK_02 = "notebooks/02_inference_networks.ipynb"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # fewer processes, less memory (the whole test stays under 2 GB with a TensorFlow kernel running)
    "--in-process-gpu",
    "--no-zygote",
    "--enable-features=NetworkServiceInProcess2",
    "--disable-extensions",
    "--renderer-process-limit=1",
    "--disable-features=site-per-process,Translate,MediaRouter,OptimizationHints",
]
RUN_TIMEOUT_S = int(os.environ.get("INFERNET_BROWSER_TIMEOUT", 20 * 60))  # whole notebook, quick mode, slow shared CPU
SERVER_START_TIMEOUT_S = 120
STALL_S = 90  # kernel idle this long while cells are still pending: the run is stuck


def _require_chromium() -> None:
    """Skip (or, under ``make test``, fail) when Debian's chromium is missing: ``make test`` installs it."""
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing: `make test` installs it (`sudo apt-get install -y chromium`)"
    if os.environ.get("INFERNET_REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, token: str, path: str, method: str = "GET", timeout: float = 5.0):
    request = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    return json.loads(body) if body else None


class LabServer:
    def __init__(self, base: str, token: str, process: subprocess.Popen, log: Path):
        self.base, self.token, self.process, self.log = base, token, process, log

    def log_tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def shutdown_kernels(self) -> None:
        """Stop every kernel (each holds a TensorFlow runtime); errors mean the server is going down."""
        try:
            for kernel in _api(self.base, self.token, "/api/kernels") or []:
                _api(self.base, self.token, f"/api/kernels/{kernel['id']}", method="DELETE", timeout=20)
        except Exception:
            pass

    def stop(self) -> None:
        """Shut down kernels and the server; kill what does not stop."""
        if self.process.poll() is None:
            self.shutdown_kernels()
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture(scope="module")
def lab(mnist_dir, tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 with its own folders; always stopped at the end."""
    _require_chromium()
    pytest.importorskip("playwright.sync_api", reason="pip install -e .[browser] (playwright)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    home = tmp_path_factory.mktemp("jupyter")
    dirs = {name: home / name for name in ("config", "data", "runtime", "settings", "workspaces", "ipython")}
    for folder in dirs.values():
        folder.mkdir()
    # no news/update toasts over the notebook; never autosave (the run must not rewrite notebooks/)
    for plugin, values in {
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "docmanager-extension/plugin": {"autosave": False},
        # every cell laid out once: no cell resized as it scrolls into view under a handle being dragged
        "notebook-extension/tracker": {"windowingMode": "none"},
    }.items():
        folder, name = plugin.split("/")
        (dirs["settings"] / "@jupyterlab" / folder).mkdir(parents=True, exist_ok=True)
        (dirs["settings"] / "@jupyterlab" / folder / f"{name}.jupyterlab-settings").write_text(json.dumps(values))
    token = os.urandom(16).hex()
    port = _free_port()
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
        JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]),
        IPYTHONDIR=str(dirs["ipython"]),
        INFERNET_QUICK="1",
        INFERNET_DATA_DIR=str(mnist_dir),
        PYTHONUNBUFFERED="1",
    )
    log = ARTIFACTS / "jupyterlab.log"
    command = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={REPO}",
        f"--FileCheckpoints.checkpoint_dir={home / 'checkpoints'}",  # no .ipynb_checkpoints in the repository
        "--ContentsManager.allow_hidden=True",  # the generated notebook lives in tests/artifacts/.notebooks
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.news_url=None",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    server = LabServer(f"http://127.0.0.1:{port}", token, process, log)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {process.returncode}:\n{server.log_tail()}")
            try:
                _api(server.base, token, "/api/status", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within {SERVER_START_TIMEOUT_S} s:\n{server.log_tail()}")
                time.sleep(0.5)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture()
def page(browser, lab):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        context.close()
        lab.shutdown_kernels()  # one notebook kernel at a time keeps the test's memory down


FIND_NOTEBOOK_JS = """const app = window.jupyterapp;
  const nb = app ? Array.from(app.shell.widgets('main')).find(w => w.context && w.context.path === PATH) : undefined;"""

NOTEBOOK_STATE_JS = """(PATH) => { %s
  if (!nb || !nb.content || !nb.sessionContext) return {ready: false};
  const kernel = nb.sessionContext.session && nb.sessionContext.session.kernel;
  const cells = nb.content.widgets.filter(c => c.model.type === 'code' && c.model.sharedModel.getSource().trim());
  const errors = [];
  for (const c of cells) {
    for (const o of c.model.outputs.toJSON()) {
      if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
    }
  }
  return {ready: true, status: kernel ? kernel.status : 'none', cells: cells.length,
          done: cells.filter(c => c.model.executionCount !== null && c.promptNode.textContent.indexOf('*') < 0).length,
          errors: errors};
}""" % FIND_NOTEBOOK_JS


def run_all_cells(page, lab: LabServer, notebook: str, shot_name: str) -> None:
    """Open ``notebook`` (path under the repository), clear it, run every cell, wait until done.

    Each call uses a fresh JupyterLab workspace, so no layout of an earlier test is restored, and
    the notebook is found by its path, not by which tab happens to be active.
    """
    workspace = f"{shot_name}-{os.urandom(4).hex()}"
    page.goto(f"{lab.base}/lab/workspaces/{workspace}/tree/{notebook}?reset&token={lab.token}")
    page.wait_for_function(f"(PATH) => {{ {FIND_NOTEBOOK_JS} return !!(nb && nb.sessionContext); }}", arg=notebook,
                           timeout=120_000)
    page.evaluate(f"async (PATH) => {{ {FIND_NOTEBOOK_JS} await nb.context.ready; await nb.sessionContext.ready;"
                  " app.shell.activateById(nb.id); }", notebook)
    page.wait_for_function(f"(PATH) => {{ {FIND_NOTEBOOK_JS} const k = nb.sessionContext.session?.kernel;"
                           " return k && k.status === 'idle'; }", arg=notebook, timeout=180_000)
    page.evaluate(f"async (PATH) => {{ {FIND_NOTEBOOK_JS} app.shell.activateById(nb.id);"
                  " await app.commands.execute('notebook:clear-all-cell-outputs');"
                  " await app.commands.execute('notebook:run-all-cells'); }", notebook)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    state = {}
    idle_since = None
    while time.monotonic() < deadline:
        state = page.evaluate(NOTEBOOK_STATE_JS, notebook)
        if state.get("errors"):
            page.screenshot(path=str(ARTIFACTS / f"{shot_name}_error.png"), full_page=True)
            pytest.fail(f"{notebook} raised in the browser: {state['errors']}")
        if state.get("ready") and state["status"] == "idle" and state["done"] == state["cells"]:
            return
        # an idle kernel with cells still pending for a minute: the run stopped (or never started)
        idle = state.get("ready") and state["status"] == "idle"
        idle_since = (idle_since or time.monotonic()) if idle else None
        if idle_since is not None and time.monotonic() - idle_since > STALL_S:
            page.screenshot(path=str(ARTIFACTS / f"{shot_name}_stalled.png"), full_page=True)
            pytest.fail(f"{notebook}: kernel idle for {STALL_S} s with cells not run: {state}")
        time.sleep(1.0)
    page.screenshot(path=str(ARTIFACTS / f"{shot_name}_timeout.png"), full_page=True)
    pytest.fail(f"{notebook} did not finish within {RUN_TIMEOUT_S} s: {state}\nserver log:\n{lab.log_tail()}")


def pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), np.int16)


def images_differ(png_a: bytes, png_b: bytes) -> bool:
    a, b = pixels(png_a), pixels(png_b)
    return a.shape != b.shape or bool(np.abs(a - b).sum() > 0)


def steady_box(page, locator, timeout_s: float = 30.0) -> dict:
    """The locator's bounding box once it is the same in three reads 100 ms apart (scrolled to the
    middle of the view first). Output that is still being laid out (images decoding, cells above
    growing) moves it; Playwright's own wait for a stable element gave up on that once in CI."""
    locator.evaluate("e => e.scrollIntoView({block: 'center', inline: 'nearest'})")
    boxes, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        boxes = (boxes + [locator.bounding_box()])[-3:]
        if len(boxes) == 3 and boxes[0] is not None and boxes[0] == boxes[1] == boxes[2]:
            return boxes[0]
        page.wait_for_timeout(100)
    raise AssertionError(f"the element kept moving for {timeout_s} s; last boxes: {boxes}")


def drag_slider(page, slider, dx: int) -> None:
    """Drag the noUiSlider handle of an ipywidgets slider by ``dx`` pixels, as a user would."""
    handle = slider.locator(".noUi-handle").first
    box = steady_box(page, handle)
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx / 2, y, steps=4)
    page.mouse.move(x + dx, y, steps=4)
    page.mouse.up()


def wait_for_change(page, locator, before: str, what: str, timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = locator.inner_text()
        if now != before:
            return now
        time.sleep(0.1)
    raise AssertionError(f"{what} did not change within {timeout_s} s (still {before!r})")


BUNDLE_JS = """node => {
  const cellNode = node.closest('.jp-Cell');
  const nb = Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.node.contains(cellNode));
  const cell = nb.content.widgets.find(c => c.node === cellNode);
  return cell.model.outputs.toJSON().filter(o => o.data).map(o => Object.keys(o.data).sort());
}"""


def wait_for_text(page, locator, needle: str, what: str, timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    now = ""
    while time.monotonic() < deadline:
        now = locator.inner_text()
        if needle in now:
            return now
        time.sleep(0.1)
    raise AssertionError(f"{what} does not show {needle!r} within {timeout_s} s: {now!r}")


def check_live_not_fallback(explorer) -> None:
    """The cell's output carries widget + PNG in one bundle; JupyterLab shows the widget only."""
    bundles = explorer.evaluate(BUNDLE_JS)
    assert ["application/vnd.jupyter.widget-view+json", "image/png", "text/plain"] in bundles, bundles
    output = explorer.locator("xpath=ancestor::div[contains(@class,'jp-OutputArea-child')][1]")
    assert output.locator(".jp-RenderedImage").count() == 0, "JupyterLab shows the static PNG next to the widget"


def test_amortization_explorer_in_jupyterlab(lab, page):
    notebook = os.environ.get("INFERNET_BROWSER_NOTEBOOK", NOTEBOOK_02)
    if not (REPO / notebook).is_file():
        pytest.fail(f"{notebook} is missing")
    run_all_cells(page, lab, notebook, "amortization")

    explorer = page.locator(".infernet-amortization-explorer").first
    explorer.wait_for(state="visible", timeout=60_000)
    explorer.scroll_into_view_if_needed()
    check_live_not_fallback(explorer)
    elbo = explorer.locator(".infernet-elbo")
    digits = explorer.locator("img.infernet-amortization-figure")
    page.wait_for_timeout(300)
    text0 = elbo.inner_text()
    image0 = digits.screenshot()
    explorer.screenshot(path=str(ARTIFACTS / "amortization_before.png"))
    assert "amortized ELBO" in text0 and "nats" in text0, text0

    index_slider = explorer.locator(".widget-hslider").first
    readout0 = index_slider.locator(".widget-readout").inner_text()
    drag_slider(page, index_slider, 120)
    readout1 = index_slider.locator(".widget-readout").inner_text().strip()
    assert readout1 != readout0.strip(), "the slider did not move"
    # the slider updates continuously while dragged; wait for the view of where it stopped
    text1 = wait_for_text(page, elbo, f"digit {readout1})", "the ELBO text after moving the digit slider")
    assert text1 != text0
    page.wait_for_timeout(500)  # the image arrives in the same kernel reply; give it time to paint
    image1 = digits.screenshot()
    explorer.screenshot(path=str(ARTIFACTS / "amortization_after.png"))
    assert images_differ(image0, image1), "the digit image did not change"

    # refinement: the gap in nats appears, the ELBO curve is shown
    explorer.get_by_role("button", name="refine q(z|x)").click()
    text2 = wait_for_change(page, elbo, text1, "the ELBO text after refinement", timeout_s=300)
    assert "refined ELBO" in text2 and "gap =" in text2, text2
    page.wait_for_timeout(500)
    explorer.screenshot(path=str(ARTIFACTS / "amortization_refined.png"))
    page.screenshot(path=str(ARTIFACTS / "amortization_page.png"), full_page=False)


WIDGETS_NOTEBOOK = """
import infernet_tutorial as it
x = it.load_mnist("train", n=6000)
xt = it.load_mnist("test", n=1000, binarize="sample")
network, decoder, prior = it.MLPInferenceNetwork(2), it.BernoulliDecoder(2), it.standard_normal_prior(2)
history = it.train(network, decoder, prior, x.images, epochs=10, progress=False)
"""


def test_memory_and_latent_explorers_in_jupyterlab(lab, page, request):
    """Both other explorers render live and respond to their sliders (a small notebook of our own)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(WIDGETS_NOTEBOOK.strip()),
        nbformat.v4.new_code_cell("memory = it.memory_explorer(network_params=it.MLPInferenceNetwork(10).count_params(), latent_dim=10)"),
        nbformat.v4.new_code_cell("latent = it.latent_explorer(network, decoder, xt.images, xt.labels)"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    # a hidden folder: pytest (and so nbval) never collects it; the server is told to serve it
    path = ARTIFACTS / ".notebooks" / "explorers_browser_test.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    request.addfinalizer(lambda: path.unlink(missing_ok=True))
    run_all_cells(page, lab, str(path.relative_to(REPO)), "explorers")

    for name, image_class, text_class in [
        ("memory", ".infernet-memory-explorer img", ".infernet-memory-explorer .widget-html-content"),
        ("latent", ".infernet-latent-explorer img.infernet-latent-figure", ".infernet-latent-explorer .widget-html-content"),
    ]:
        explorer = page.locator(f".infernet-{name}-explorer").first
        explorer.wait_for(state="visible", timeout=60_000)
        explorer.scroll_into_view_if_needed()
        check_live_not_fallback(explorer)
        image, text = page.locator(image_class).first, page.locator(text_class).first
        page.wait_for_timeout(300)
        text0, image0 = text.inner_text(), image.screenshot()
        drag_slider(page, explorer.locator(".widget-hslider").first, 90)
        wait_for_change(page, text, text0, f"the {name} explorer's text")
        page.wait_for_timeout(500)
        assert images_differ(image0, image.screenshot()), f"the {name} explorer's image did not change"
        explorer.screenshot(path=str(ARTIFACTS / f"{name}_explorer.png"))


SAVED_CELL_JS = """async ([PATH, PREFIX]) => { %s
  if (!nb || !nb.context || !nb.context.isReady) return {ready: false};
  const cells = nb.content.widgets;
  const i = cells.findIndex(c => c.model.type === 'code' && c.model.sharedModel.getSource().includes(PREFIX));
  if (i < 0) return {ready: true, found: false};
  nb.content.activeCellIndex = i;
  await nb.content.scrollToItem(i);
  const node = cells[i].node;
  return {ready: true, found: true, images: node.querySelectorAll('.jp-OutputArea-output img').length,
          text: node.innerText};
}""" % FIND_NOTEBOOK_JS


SAVED_CHECKS = {  # notebook -> (a cell's source contains this, it must show this) before any cell runs
    "notebooks/01_local_vi.ipynb": [("# explorer", "picture")],
    NOTEBOOK_02: [("# explorer", "picture"), ("history = it.train(network", "amortized VI:")],
    "notebooks/03_conv_inference_network.ipynb": [("# explorer", "picture")],
}


@pytest.mark.parametrize("notebook", sorted(SAVED_CHECKS))
def test_saved_notebook_shows_static_pictures_before_running(lab, page, notebook):
    """Opened before running, a committed notebook shows each explorer's picture and each bar's final text."""
    workspace = f"saved-{os.urandom(4).hex()}"
    page.goto(f"{lab.base}/lab/workspaces/{workspace}/tree/{notebook}?reset&token={lab.token}")
    page.wait_for_function(f"(PATH) => {{ {FIND_NOTEBOOK_JS} return !!(nb && nb.context && nb.context.isReady); }}",
                           arg=notebook, timeout=120_000)
    for prefix, expect in SAVED_CHECKS[notebook]:
        state = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = page.evaluate(SAVED_CELL_JS, [notebook, prefix])
            if state.get("found") and (state["images"] if expect == "picture" else expect in state["text"]):
                break
            time.sleep(0.5)
        shot = f"saved_{Path(notebook).stem[:2]}_{expect.split(':')[0].replace(' ', '_')}.png"
        page.screenshot(path=str(ARTIFACTS / shot))
        assert state.get("found"), f"no cell containing {prefix!r} in {notebook}"
        assert "Error displaying widget" not in state["text"], state["text"][:300]
        assert "0%|" not in state["text"], f"a progress bar frozen at 0 %: {state['text'][:300]}"
        if expect == "picture":
            assert state["images"] >= 1, f"the explorer shows no static picture before running: {state['text'][:300]}"
        else:
            assert expect in state["text"] and "steps in" in state["text"], state["text"][:300]
