"""The explorers' logic without a browser: values set from Python change what the widget shows.

The display bundle (live widget + static PNG in one output) is captured by replacing
`widgets.display`; the browser test (test_browser.py) checks the same explorers in JupyterLab.
"""
from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from infernet_tutorial import (
    BernoulliDecoder,
    MLPInferenceNetwork,
    elbo,
    load_mnist,
    standard_normal_prior,
)
from infernet_tutorial import widgets

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture()
def shown(monkeypatch):
    """Everything the explorers display, as raw bundles."""
    bundles = []
    monkeypatch.setattr(widgets, "display", lambda bundle, raw=False: bundles.append((bundle, raw)))
    return bundles


@pytest.fixture(scope="module")
def digits(mnist_dir):
    return load_mnist("test", n=40, binarize="sample", data_dir=mnist_dir)


@pytest.fixture(scope="module")
def model():
    tf.keras.utils.set_random_seed(0)
    return MLPInferenceNetwork(10, hidden=32), BernoulliDecoder(10, hidden=32), standard_normal_prior(10)


def png_pixels(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return np.asarray(Image.open(io.BytesIO(png)))


def check_bundle(bundles, explorer) -> np.ndarray:
    """Exactly one raw output with the live widget AND a PNG (the static fallback) and a text."""
    assert len(bundles) == 1
    bundle, raw = bundles[0]
    assert raw is True
    assert set(bundle) == {WIDGET_MIME, "image/png", "text/plain"}
    assert bundle[WIDGET_MIME] == {"version_major": 2, "version_minor": 0, "model_id": explorer.model_id}
    png = base64.b64decode(bundle["image/png"])
    assert png == explorer.fallback_png
    image = png_pixels(png)
    assert image.shape[0] > 100 and image.shape[1] > 200
    assert image.std() > 10, "the fallback picture is blank"
    return image


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, re.sub(r"<[^>]+>", "", text))  # the text is HTML
    assert match, (pattern, text)
    return float(match.group(1).replace(",", ""))


# --------------------------------------------------------------------------- memory explorer


def test_memory_arithmetic():
    assert widgets.memory_bytes(60_000, 10) == 2 * 60_000 * 10 * 4 == 4_800_000
    assert widgets.crossover_points(206_100, 10) == 10_305
    # at the crossover, local factors and encoder need the same bytes
    assert widgets.memory_bytes(widgets.crossover_points(206_100, 10), 10) == 206_100 * 4


def test_memory_explorer_slider_changes_plot_and_text(shown):
    explorer = widgets.memory_explorer(206_100, latent_dim=10)
    check_bundle(shown, explorer)
    slider, image, text = explorer.controls["n"], explorer.views["image"], explorer.views["text"]
    slider.value = 1_000_000
    assert "local factors 80.0 MB" in text.value and "inference network 824.4 kB" in text.value
    assert "97.0× more" in text.value and "N* = 10,305" in text.value
    before = png_pixels(image.value)
    slider.value = 1_000
    after = png_pixels(image.value)
    assert before.shape == after.shape and np.abs(before.astype(int) - after).sum() > 0
    assert "local factors 80.0 kB" in text.value and "less" in text.value
    assert len(explorer.timings) == 2


@pytest.mark.parametrize("params, d", [(0, 10), (1000, 0), (10.5, 10)])
def test_memory_explorer_rejects_bad_sizes(params, d, shown):
    with pytest.raises(ValueError, match="positive integer"):
        widgets.memory_explorer(params, latent_dim=d)
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
    q = widgets_q(loc, scale)
    value = elbo(tf.constant(x[None]), q, decoder, prior, num_samples=widgets.ELBO_SAMPLES, seed=widgets.ELBO_SEED)
    return float(value[0])


def widgets_q(loc, scale):
    from infernet_tutorial.families import diag_gaussian

    return diag_gaussian(tf.constant(np.asarray(loc, np.float32)[None]), tf.constant(np.asarray(scale, np.float32)[None]))


def test_amortization_explorer_slider_changes_image_and_elbo(shown, digits, model):
    encoder, decoder, prior = model
    explorer = widgets.amortization_explorer(digits.images, encoder, decoder, prior, refine_steps=20)
    check_bundle(shown, explorer)
    index, image, text = explorer.controls["index"], explorer.views["digits"], explorer.views["elbo"]
    assert index.max == len(digits.images) - 1

    first_png, first_text = image.value, text.value
    index.value = 7
    assert image.value != first_png and text.value != first_text
    assert "digit 7" in text.value
    # the number shown is the 100-sample ELBO of the encoder's q for digit 7
    loc, scale = encoder.params(tf.constant(digits.images[7:8]))
    shown_elbo = number(r"amortized ELBO.*?(-?[\d,]+\.\d+) nats", text.value)
    assert shown_elbo == pytest.approx(expected_elbo(digits.images[7], loc[0], scale[0], decoder, prior), abs=0.006)
    # the first panel is digit 7 itself (28x28 upscaled 5x, ink dark)
    strip = png_pixels(image.value)
    np.testing.assert_array_equal(strip[:140:5, :140:5], (255 * (1 - digits.images[7])).reshape(28, 28).astype(np.uint8))


def test_amortization_explorer_corruption_is_what_the_encoder_sees(shown, digits, model):
    encoder, decoder, prior = model
    explorer = widgets.amortization_explorer(digits.images, encoder, decoder, prior)
    explorer.controls["index"].value = 3
    clean_text = explorer.views["elbo"].value
    explorer.controls["occlude"].value = 14
    x = explorer.state["x"]
    assert x.reshape(28, 28)[-14:].sum() == 0
    np.testing.assert_array_equal(x, widgets.corrupt(digits.images[3], 14, 0.0, seed=3))
    loc, scale = encoder.params(tf.constant(x[None]))
    np.testing.assert_allclose(explorer.state["loc"], loc[0], rtol=1e-5, atol=1e-6)
    assert explorer.views["elbo"].value != clean_text
    assert number(r"amortized ELBO.*?(-?[\d,]+\.\d+) nats", explorer.views["elbo"].value) == pytest.approx(
        expected_elbo(x, loc[0], scale[0], decoder, prior), abs=0.006
    )


def test_amortization_refine_improves_elbo_and_trains_nothing_else(shown, digits, model):
    encoder, decoder, prior = model
    explorer = widgets.amortization_explorer(digits.images, encoder, decoder, prior, refine_steps=60, learning_rate=5e-2)
    explorer.controls["index"].value = 5
    frozen = [v.numpy().copy() for v in encoder.trainable_variables + decoder.trainable_variables]
    explorer.refine()
    state, text = explorer.state, explorer.views["elbo"].value
    assert state["refined_steps"] == 60 and explorer.views["progress"].value == 60
    gap = number(r"gap = (-?[\d.]+) nats", text)
    refined = number(r"refined ELBO.*?(-?[\d,]+\.\d+) nats", text)
    assert gap == pytest.approx(state["refined_elbo"] - state["elbo"], abs=0.011)
    assert refined == pytest.approx(expected_elbo(digits.images[5], *state["refined_q"], decoder, prior), abs=0.006)
    assert gap > 0, "60 Adam steps from the encoder's output should raise this digit's ELBO"
    for before, v in zip(frozen, encoder.trainable_variables + decoder.trainable_variables):
        np.testing.assert_array_equal(before, v.numpy())  # the model is never retrained
    assert explorer.views["curve"].layout.display is None and explorer.views["curve"].value
    # moving on to another digit drops the refined view
    explorer.controls["index"].value = 6
    assert "refined" not in explorer.views["elbo"].value
    explorer.controls["random"].click()  # draws from a generator seeded with 0
    assert explorer.controls["index"].value == int(np.random.default_rng(0).integers(len(digits.images)))
    assert f"digit {explorer.controls['index'].value})" in explorer.views["elbo"].value


def test_amortization_explorer_rejects_grey_levels(shown, mnist_dir, model):
    grey = load_mnist("test", n=5, binarize=None, data_dir=mnist_dir).images
    with pytest.raises(ValueError, match="binary pixels"):
        widgets.amortization_explorer(grey, *model)
    with pytest.raises(ValueError, match=r"shape \[n, 784\]"):
        widgets.amortization_explorer(grey.reshape(5, 28, 28), *model)
    assert shown == []


# --------------------------------------------------------------------------- latent explorer


def test_latent_explorer_decodes_the_chosen_point(shown, digits):
    tf.keras.utils.set_random_seed(1)
    encoder, decoder = MLPInferenceNetwork(2, hidden=32), BernoulliDecoder(2, hidden=32)
    explorer = widgets.latent_explorer(encoder, decoder, digits.images, digits.labels)
    check_bundle(shown, explorer)
    z1, z2 = explorer.controls["z1"], explorer.controls["z2"]
    map0, decoded0 = explorer.views["map"].value, explorer.views["decoded"].value
    z1.value, z2.value = 1.5, -2.0
    assert explorer.views["map"].value != map0 and explorer.views["decoded"].value != decoded0
    assert "z = (1.50, -2.00)" in explorer.views["text"].value
    expected = tf.sigmoid(decoder.logits(tf.constant([[1.5, -2.0]]))).numpy()[0]
    shown_pixels = png_pixels(explorer.views["decoded"].value)[::6, ::6]
    np.testing.assert_allclose(shown_pixels, (255 * (1 - expected)).reshape(28, 28), atol=1.01)
    loc = encoder.params(tf.constant(digits.images))[0].numpy()
    nearest = int(np.argmin(((loc - [1.5, -2.0]) ** 2).sum(1)))
    assert f"label {digits.labels[nearest]}" in explorer.views["text"].value


def test_latent_explorer_needs_two_dimensions(shown, digits, model):
    encoder, decoder, _ = model
    with pytest.raises(ValueError, match="latent_dim=2, got latent_dim=10"):
        widgets.latent_explorer(encoder, decoder, digits.images, digits.labels)
    with pytest.raises(ValueError, match="40 digits but 39 labels"):
        widgets.latent_explorer(encoder, decoder, digits.images, digits.labels[:-1])
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

    from conftest import REPO

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
