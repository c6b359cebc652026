"""The explorers without a browser: values set from Python change what the user sees (the figure's
pixels, the texts and their numbers).

The display bundle (live widget + static PNG in one output) is captured by replacing the
``display`` the explorers call; the browser test (test_browser.py) checks the same explorers in JupyterLab.
"""
from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, small_model, unchanged, weights
from PIL import Image

import infernet_tutorial as it
from infernet_tutorial import elbo, load_mnist, widgets
from infernet_tutorial import widget_amortization as amortization
from infernet_tutorial import widget_canvas as canvas
from infernet_tutorial import widget_latent as latent
from infernet_tutorial.widget_digits import ink
from infernet_tutorial.families import diag_gaussian

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture()
def shown(monkeypatch):
    """Everything the explorers display, as raw bundles."""
    bundles = []
    monkeypatch.setattr(canvas, "display", lambda bundle, raw=False: bundles.append((bundle, raw)))
    return bundles


@pytest.fixture(scope="module")
def digits(mnist_dir):
    return load_mnist("test", n=40, binarize="sample", data_dir=mnist_dir)


@pytest.fixture(scope="module")
def model():
    return small_model(latent_dim=10, hidden=32, seed=0)


def png_pixels(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return np.asarray(Image.open(io.BytesIO(png)))


def check_bundle(bundles, explorer, live_image) -> None:
    """Exactly one raw output with the live widget, a text, and a PNG of the same figure as the
    live image plus its static-only parts (a note that it is static, titles with numbers)."""
    assert len(bundles) == 1
    bundle, raw = bundles[0]
    assert raw is True
    assert set(bundle) == {WIDGET_MIME, "image/png", "text/plain"}
    assert bundle[WIDGET_MIME] == {"version_major": 2, "version_minor": 0, "model_id": explorer.model_id}
    static, live = png_pixels(base64.b64decode(bundle["image/png"])), png_pixels(live_image.value)
    assert static.shape == live.shape and static.shape[0] > 100 and static.shape[1] > 200
    assert static.std() > 10, "the static picture is blank"
    same = np.all(static == live, axis=-1).mean()
    assert 0.9 < same < 1, f"the static picture should be the live figure plus its note ({same:.1%} of pixels equal)"


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, re.sub(r"<[^>]+>", "", text))  # the text is HTML
    assert match, (pattern, text)
    return float(match.group(1).replace(",", ""))


def panel(png: bytes, left: int, top: int, side: int) -> np.ndarray:
    """The square of ``side`` pixels at (left, top) of an explorer's figure, as [side, side, 3]."""
    return png_pixels(png)[top : top + side, left : left + side]


def test_public_names():
    assert it.memory_explorer is widgets.memory_explorer
    assert it.amortization_explorer is widgets.amortization_explorer
    assert it.latent_explorer is widgets.latent_explorer


# --------------------------------------------------------------------------- memory explorer


def test_memory_explorer_slider_changes_plot_and_text(shown):
    explorer = widgets.memory_explorer(206_100, latent_dim=10)
    slider, image, text = explorer.controls["n"], explorer.views["image"], explorer.views["text"]
    check_bundle(shown, explorer, image)
    assert "N = 60,000: local factors 4.8 MB (1,200,000 numbers)" in text.value
    slider.value = 1_000_000
    assert "local factors 80.0 MB" in text.value and "inference network 824.4 kB" in text.value
    assert "97.0× more" in text.value and "N* = 10,305" in text.value
    before = png_pixels(image.value)
    slider.value = 1_000
    after = png_pixels(image.value)
    assert before.shape == after.shape and np.abs(before.astype(int) - after).sum() > 0
    assert "local factors 80.0 kB" in text.value and "10.3× less" in text.value


@pytest.mark.parametrize("params, d, wrong", [(0, 10, "network_params.*got 0"), (1000, 0, "latent_dim.*got 0"),
                                              (10.5, 10, r"network_params.*\(e.g. network.count_params\(\)\), got 10.5")])
def test_memory_explorer_rejects_bad_sizes(params, d, wrong, shown):
    with pytest.raises(ValueError, match="must be a positive integer") as error:
        widgets.memory_explorer(params, latent_dim=d)
    assert re.search(wrong, str(error.value)), str(error.value)
    assert shown == []


# --------------------------------------------------------------------------- amortization explorer


def test_corrupt():
    x = (np.arange(784) % 3 == 0).astype(np.float32)
    np.testing.assert_array_equal(widgets.corrupt(x), x)
    hidden = widgets.corrupt(x, occlude_rows=5).reshape(28, 28)
    assert hidden[-5:].sum() == 0
    np.testing.assert_array_equal(hidden[:-5], x.reshape(28, 28)[:-5])
    flips_small = widgets.corrupt(x, noise=0.1, seed=3) != x
    flips_large = widgets.corrupt(x, noise=0.3, seed=3) != x
    assert 30 < flips_small.sum() < 130 and flips_large.sum() > flips_small.sum()
    assert np.all(flips_large[flips_small]), "more noise must keep the earlier flips"
    assert set(np.unique(widgets.corrupt(x, 4, 0.2))) <= {0.0, 1.0}


def expected_elbo(x, loc, scale, decoder, prior) -> float:
    q = diag_gaussian(tf.constant(np.asarray(loc, np.float32)[None]), tf.constant(np.asarray(scale, np.float32)[None]))
    value = elbo(tf.constant(x[None]), q, decoder, prior, num_samples=widgets.ELBO_SAMPLES, seed=widgets.ELBO_SEED)
    return float(value[0])


def digit_panel(explorer, k: int) -> np.ndarray:
    """Panel k of the amortization figure: original, network input, reconstruction, refined reconstruction."""
    return panel(explorer.views["figure"].value, amortization.DIGITS_LEFT[k], amortization.DIGITS_TOP, amortization.DIGIT_SIDE)


def test_amortization_explorer_slider_changes_image_and_elbo(shown, digits, model):
    network, decoder, prior = model
    explorer = widgets.amortization_explorer(digits.images, network, decoder, prior, refine_steps=20)
    index, figure, text = explorer.controls["index"], explorer.views["figure"], explorer.views["elbo"]
    check_bundle(shown, explorer, figure)
    assert index.max == len(digits.images) - 1

    first_png, first_text = figure.value, text.value
    index.value = 7
    assert figure.value != first_png and text.value != first_text
    assert "digit 7" in text.value
    # the number shown is the 100-sample ELBO of the network's q for digit 7
    q = network(tf.constant(digits.images[7:8]))
    shown_elbo = number(r"amortized ELBO.*?(-?[\d,]+\.\d+) nats", text.value)
    assert shown_elbo == pytest.approx(expected_elbo(digits.images[7], q.mean()[0], q.stddev()[0], decoder, prior), abs=0.006)
    # the first two panels are digit 7 itself (each pixel a 4x4 block, ink dark), the third its
    # reconstruction (the decoder's Bernoulli means at q's mean), the fourth blank until refined
    np.testing.assert_array_equal(digit_panel(explorer, 0), ink(digits.images[7], 4))
    np.testing.assert_array_equal(digit_panel(explorer, 1), ink(digits.images[7], 4))
    recon = tf.sigmoid(decoder.logits(q.mean())).numpy()[0]
    np.testing.assert_allclose(digit_panel(explorer, 2), ink(recon, 4), atol=1)
    assert np.all(digit_panel(explorer, 3) == 255)


def test_amortization_explorer_corruption_is_what_the_network_sees(shown, digits, model):
    network, decoder, prior = model
    explorer = widgets.amortization_explorer(digits.images, network, decoder, prior)
    explorer.controls["index"].value = 3
    clean_text = explorer.views["elbo"].value
    explorer.controls["occlude"].value = 14
    x = widgets.corrupt(digits.images[3], 14, 0.0, seed=3)
    assert x.reshape(28, 28)[-14:].sum() == 0
    np.testing.assert_array_equal(digit_panel(explorer, 0), ink(digits.images[3], 4))
    np.testing.assert_array_equal(digit_panel(explorer, 1), ink(x, 4))
    q = network(tf.constant(x[None]))
    assert explorer.views["elbo"].value != clean_text
    assert number(r"amortized ELBO.*?(-?[\d,]+\.\d+) nats", explorer.views["elbo"].value) == pytest.approx(
        expected_elbo(x, q.mean()[0], q.stddev()[0], decoder, prior), abs=0.006
    )


def test_amortization_refine_improves_elbo_and_trains_nothing_else(shown, digits, model):
    network, decoder, prior = model
    explorer = widgets.amortization_explorer(digits.images, network, decoder, prior, refine_steps=60, learning_rate=5e-2)
    explorer.controls["index"].value = 5
    frozen = weights(network, decoder)
    refined = explorer.refine()
    text = explorer.views["elbo"].value
    assert "after 60 steps" in text and explorer.views["progress"].value == 60
    amortized = number(r"amortized ELBO.*?(-?[\d,]+\.\d+) nats", text)
    shown_refined = number(r"refined ELBO.*?(-?[\d,]+\.\d+) nats", text)
    gap = number(r"gap = (-?[\d.]+) nats", text)
    assert gap == pytest.approx(shown_refined - amortized, abs=0.011)
    assert shown_refined == pytest.approx(expected_elbo(digits.images[5], refined.loc, refined.scale, decoder, prior), abs=0.006)
    assert gap > 0, "60 Adam steps from the network's output should raise this digit's ELBO"
    assert unchanged(frozen, network, decoder), "the model is never retrained"
    # the fourth panel shows the refined reconstruction; the ELBO curve is shown
    recon = tf.sigmoid(decoder.logits(tf.constant(refined.loc[None]))).numpy()[0]
    np.testing.assert_allclose(digit_panel(explorer, 3), ink(recon, 4), atol=1)
    assert explorer.views["curve"].layout.display is None and png_pixels(explorer.views["curve"].value).std() > 10
    # moving on to another digit drops the refined view
    explorer.controls["index"].value = 6
    assert "refined" not in explorer.views["elbo"].value and np.all(digit_panel(explorer, 3) == 255)
    assert explorer.views["curve"].layout.display == "none"
    explorer.controls["random"].click()  # draws from a generator seeded with 0
    assert explorer.controls["index"].value == int(np.random.default_rng(0).integers(len(digits.images)))
    assert f"digit {explorer.controls['index'].value})" in explorer.views["elbo"].value


def test_amortization_q_axis_holds_every_bar(shown, digits, model):
    """The q(z|x) plot's y axis widens when a bar would leave it: nothing is clipped."""
    _, decoder, prior = model

    def network(x):  # every mean is the digit's ink / 25: flipping pixels adds ink
        ink_mass = tf.reduce_sum(x, axis=1, keepdims=True) / 25.0
        return diag_gaussian(tf.tile(ink_mass, [1, 10]), tf.ones_like(tf.tile(ink_mass, [1, 10])))

    explorer = widgets.amortization_explorer(digits.images, network, decoder, prior)
    ax = explorer.picture.fig.axes[0]
    first = ax.get_ylim()
    assert first[0] == -first[1] and first[1] >= digits.images.sum(axis=1).max() / 25 + 1
    explorer.controls["noise"].value = 0.3
    top = widgets.corrupt(digits.images[0], 0, 0.3, seed=0).sum() / 25 + 1
    assert top > first[1], "the flipped digit's bars leave the first frame"
    low, high = ax.get_ylim()
    assert low <= -top and high >= top


def test_amortization_explorer_rejects_grey_levels(shown, mnist_dir, model):
    grey = load_mnist("test", n=5, binarize=None, data_dir=mnist_dir).images
    with pytest.raises(ValueError, match="binary pixels"):
        widgets.amortization_explorer(grey, *model)
    with pytest.raises(ValueError, match=r"shape \[n, 784\], got \[5, 28, 28\]"):
        widgets.amortization_explorer(grey.reshape(5, 28, 28), *model)
    assert shown == []


# --------------------------------------------------------------------------- latent explorer


def test_map_limits_hold_every_point():
    loc = np.array([[-5.0, 0.0], [1.0, 7.0], [0.0, -1.0]])
    lo, hi = latent.map_limits(loc)
    # x: data [-5, 1] and the prior's [-3, 3] -> [-5, 3], padded by 5 % of 8; y: [-3, 7], padded by 5 % of 10
    np.testing.assert_allclose(lo, [-5.4, -3.5])
    np.testing.assert_allclose(hi, [3.4, 7.5])


def test_latent_explorer_decodes_the_chosen_point(shown, digits):
    network, decoder, _ = small_model(latent_dim=2, hidden=32, seed=1)
    explorer = widgets.latent_explorer(network, decoder, digits.images, digits.labels)
    z1, z2, image, text = explorer.controls["z1"], explorer.controls["z2"], explorer.views["image"], explorer.views["text"]
    check_bundle(shown, explorer, image)
    loc = network(tf.constant(digits.images)).mean().numpy()
    assert z1.min <= loc[:, 0].min() and z1.max >= loc[:, 0].max(), "the map must not clip any mean"
    assert z2.min <= loc[:, 1].min() and z2.max >= loc[:, 1].max()
    image0 = image.value
    z1.value, z2.value = 1.5, -2.0
    assert image.value != image0
    assert "z = (1.50, -2.00)" in text.value
    expected = tf.sigmoid(decoder.logits(tf.constant([[1.5, -2.0]]))).numpy()[0]
    decoded = panel(image.value, latent.DIGIT_LEFT, latent.DIGIT_TOP, latent.DIGIT_SIDE)
    np.testing.assert_allclose(decoded, ink(expected, latent.DIGIT_SCALE), atol=1)
    nearest = int(np.argmin(((loc - [1.5, -2.0]) ** 2).sum(1)))
    assert f"label {digits.labels[nearest]}" in text.value


def test_latent_map_holds_means_beyond_the_prior(shown, digits):
    """Means far outside [-3, 3] stay on the map and within the sliders' reach (notebook 03 clipped them once)."""
    _, decoder, _ = small_model(latent_dim=2, hidden=8, seed=2)

    def network(x):  # z1 = ink / 20 - 5, z2 = its negative: digits spread over about [-5, 5]
        z1 = tf.reduce_sum(x, axis=1, keepdims=True) / 20.0 - 5.0
        return diag_gaussian(tf.concat([z1, -z1], axis=1), tf.ones_like(tf.concat([z1, z1], axis=1)))

    explorer = widgets.latent_explorer(network, decoder, digits.images, digits.labels)
    z1 = digits.images.sum(axis=1) / 20 - 5
    assert z1.max() > 3 or z1.min() < -3, "the stub must put some means beyond the prior's bulk"
    ax = explorer.picture.fig.axes[0]
    (x_lo, x_hi), (y_lo, y_hi) = ax.get_xlim(), ax.get_ylim()
    assert x_lo < z1.min() and x_hi > z1.max() and y_lo < -z1.max() and y_hi > -z1.min()
    sliders = explorer.controls
    assert (sliders["z1"].min, sliders["z1"].max) == pytest.approx((x_lo, x_hi), abs=0.05)
    assert (sliders["z2"].min, sliders["z2"].max) == pytest.approx((y_lo, y_hi), abs=0.05)


def test_latent_explorer_needs_two_dimensions(shown, digits, model):
    network, decoder, _ = model
    with pytest.raises(ValueError, match="latent_dim=2, got latent_dim=10"):
        widgets.latent_explorer(network, decoder, digits.images, digits.labels)
    with pytest.raises(ValueError, match="40 digits but 39 labels"):
        widgets.latent_explorer(network, decoder, digits.images, digits.labels[:-1])
    assert shown == []


# --------------------------------------------------------------------------- committed notebooks

EXPLORER_NOTEBOOKS = {
    "01_local_vi.ipynb": "memory_explorer(",
    "02_inference_networks.ipynb": "amortization_explorer(",
    "03_conv_inference_network.ipynb": "latent_explorer(",
}


@pytest.mark.parametrize("name", sorted(EXPLORER_NOTEBOOKS))
def test_committed_notebook_shows_the_static_picture(name):
    """Where widgets cannot run (GitHub, nbconvert, nbval) the explorer's cell shows its PNG.

    nbconvert renders a widget output from the notebook's saved widget state when that state holds
    the model (needing JavaScript from a CDN) and falls back to the PNG only when it does not; so
    the explorer's model must not be in ``metadata.widgets`` (execute with
    ``--ExecutePreprocessor.store_widget_state=False`` or drop that metadata).
    """
    import nbformat

    path = REPO / "notebooks" / name
    if not path.is_file():
        pytest.skip(f"{path} not written yet")
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and EXPLORER_NOTEBOOKS[name] in c.source]
    assert cells, f"{name} does not call {EXPLORER_NOTEBOOKS[name]}...)"
    bundles = [o.data for c in cells for o in c.outputs if WIDGET_MIME in o.get("data", {})]
    assert bundles, f"{name}: the explorer cell has no saved output (run the notebook and save it)"
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for data in bundles:
        assert "image/png" in data, f"{name}: the explorer output has no static PNG"
        assert png_pixels(base64.b64decode(data["image/png"])).std() > 10
        assert data[WIDGET_MIME]["model_id"] not in state, (
            f"{name} stores the explorer's widget state, so nbconvert shows the widget (blank without "
            "JavaScript) instead of the PNG; strip metadata.widgets"
        )
