"""Notebook 03's explorer: a 2-D latent space, the network's means of test digits and the decoder at any z."""
from __future__ import annotations

import ipywidgets as W
import numpy as np

from .widget_canvas import Explorer, FigureView, image_widget, show
from .widget_digits import check_digits, ink, q_params

DIGIT_SCALE = 6  # screen pixels per image pixel of the decoded digit
DIGIT_SIDE = 28 * DIGIT_SCALE
DIGIT_LEFT, DIGIT_TOP = 430, 70  # figure pixels of the decoded digit's top-left corner
WIDTH, HEIGHT = 620, 336


def map_limits(loc: np.ndarray, least: float = 3.0, pad: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Axis limits ``([2], [2])`` that hold every point of ``loc: [n, 2]`` and at least [-least, least]
    (the prior's bulk), widened by ``pad`` of the range so that no point sits on the frame."""
    lo, hi = np.minimum(loc.min(axis=0), -least), np.maximum(loc.max(axis=0), least)
    return lo - pad * (hi - lo), hi + pad * (hi - lo)


def _latent_figure(loc: np.ndarray, labels: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """The map of means coloured by label; returns the view and its moving marker and decoded digit."""
    view = FigureView(WIDTH, HEIGHT)
    ax = view.fig.add_axes((50 / WIDTH, 58 / HEIGHT, 280 / WIDTH, 255 / HEIGHT))
    dots = ax.scatter(loc[:, 0], loc[:, 1], c=labels, cmap="tab10", s=4, alpha=0.6, vmin=-0.5, vmax=9.5, linewidths=0)
    cbar = view.fig.colorbar(dots, cax=view.fig.add_axes((340 / WIDTH, 58 / HEIGHT, 10 / WIDTH, 255 / HEIGHT)), ticks=range(10))
    cbar.set_label("digit label")
    ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), xlabel="z1", ylabel="z2")
    ax.set_title(f"inference network means of {len(loc):,} test digits", fontsize=9)
    marker = view.moving(ax.plot([], [], "o", ms=12, mfc="none", mec="tab:red", mew=2.5)[0])
    digit = view.digit(DIGIT_LEFT, DIGIT_TOP, DIGIT_SIDE)
    view.fig.text((DIGIT_LEFT + DIGIT_SIDE / 2) / WIDTH, 1 - (DIGIT_TOP - 6) / HEIGHT,
                  "decoder's Bernoulli means\nat the marked z", ha="center", va="bottom", fontsize=9)
    return view, marker, digit


def latent_explorer(network, decoder, x_test, labels, *, max_points: int = 5000) -> Explorer:
    """For a model with a 2-D latent space: pick z with two sliders, see the decoded digit.

    The map shows the inference network's means of (up to ``max_points``) test digits coloured by
    label, every one inside the frame, with the chosen z marked; it is drawn once, and each move
    decodes one z (one forward pass). Taught in notebook 03.
    """
    import tensorflow as tf

    x_test, labels = check_digits(x_test, "latent_explorer"), np.asarray(labels)
    if len(labels) != len(x_test):
        raise ValueError(f"latent_explorer got {len(x_test)} digits but {len(labels)} labels; they must match")
    x_test, labels = x_test[:max_points], labels[:max_points]
    loc, _ = q_params(network, x_test)
    if loc.shape[1] != 2:
        raise ValueError(f"latent_explorer needs a model with latent_dim=2, got latent_dim={loc.shape[1]}")
    decode = tf.function(lambda z: tf.sigmoid(decoder.logits(z)), input_signature=[tf.TensorSpec([1, 2], tf.float32)],
                         autograph=False)
    lo, hi = map_limits(loc)
    view, marker, digit = _latent_figure(loc, labels, lo, hi)
    start = np.round(np.median(loc, axis=0), 2)  # begin among the data, not necessarily at 0
    z1, z2 = (W.FloatSlider(float(s), min=float(a), max=float(b), step=0.05, description=name, layout=W.Layout(width="380px"))
              for s, a, b, name in zip(start, lo, hi, ("z1", "z2")))
    image = image_widget(view, "infernet-latent-figure")
    text = W.HTML(layout=W.Layout(width=f"{WIDTH}px"))
    explorer = Explorer([z1, z2, image, text], {"z1": z1, "z2": z2}, {"image": image, "text": text},
                        "infernet-latent-explorer", view)

    def update(change=None):
        z = np.array([[z1.value, z2.value]], np.float32).round(4) + 0.0  # + 0.0: no "-0.00"
        nearest = int(np.argmin(np.sum((loc - z) ** 2, axis=1)))
        marker.set_data(z[:, 0], z[:, 1])
        digit.set_data(ink(np.asarray(decode(tf.constant(z)))[0], DIGIT_SCALE))
        image.value = view.png()
        text.value = (f"decoded p(x|z) means at z = ({z[0, 0]:.2f}, {z[0, 1]:.2f}); "
                      f"nearest test digit (by its mean): label {labels[nearest]}")

    z1.observe(update, names="value")
    z2.observe(update, names="value")
    update()
    show(explorer, f"latent explorer: {text.value}")
    return explorer
