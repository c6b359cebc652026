"""Notebook 02's explorer: one test digit, the inference network's q(z|x) and a refined one."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import ipywidgets as W
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .data import NUM_PIXELS
from .widget_canvas import Explorer, FigureView, image_widget, show
from .widget_digits import check_digits, corrupt, ink, q_params

ELBO_SAMPLES = 100  # Monte Carlo samples behind every ELBO number the explorer shows
ELBO_SEED = 1234  # the same noise for every digit, so two numbers differ only through q
DIGIT_SCALE = 4  # screen pixels per image pixel
DIGIT_SIDE = 28 * DIGIT_SCALE
DIGITS_TOP = 56  # figure pixels from the top to the digit panels
DIGITS_LEFT = tuple(10 + k * (DIGIT_SIDE + 8) for k in range(4))  # original, input, two reconstructions
PANEL_TITLES = ("original", "network input", "reconstruction\n(network)", "reconstruction\n(refined)")
WIDTH, HEIGHT = 900, 240  # figure pixels
BLUE, RED = "tab:blue", "tab:red"


@dataclass
class DigitView:
    """One digit as the explorer shows it, for the network's q or a refined one."""

    index: int  # position in x_test
    x: np.ndarray  # [784] what q was computed for (the digit after corruption)
    loc: np.ndarray  # [d] mean of q(z|x)
    scale: np.ndarray  # [d] standard deviation of q(z|x)
    recon: np.ndarray  # [784] Bernoulli means of the decoder at z = loc
    elbo: float  # ELBO_SAMPLES-sample estimate with ELBO_SEED, nats


class _Scorer:
    """Compiled one-digit functions: q(z|x)'s parameters, the decoder's mean, the ELBO of a q."""

    def __init__(self, network, decoder, prior, latent_dim: int):
        import tensorflow as tf

        from .families import diag_gaussian
        from .objectives import elbo

        x_spec, z_spec = tf.TensorSpec([1, NUM_PIXELS], tf.float32), tf.TensorSpec([1, latent_dim], tf.float32)

        def q_of(x):
            q = network(x)
            return q.mean(), q.stddev()

        def score(x, loc, scale):
            return elbo(x, diag_gaussian(loc, scale), decoder, prior, num_samples=ELBO_SAMPLES, seed=ELBO_SEED)

        self._q = tf.function(q_of, input_signature=[x_spec], autograph=False)
        self._mean = tf.function(lambda z: tf.sigmoid(decoder.logits(z)), input_signature=[z_spec], autograph=False)
        self._elbo = tf.function(score, input_signature=[x_spec, z_spec, z_spec], autograph=False)

    def q(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        loc, scale = self._q(x[None])
        return np.asarray(loc)[0], np.asarray(scale)[0]

    def view(self, index: int, x: np.ndarray, loc, scale) -> DigitView:
        loc, scale = np.asarray(loc, np.float32), np.asarray(scale, np.float32)
        recon = np.asarray(self._mean(loc[None]))[0]
        value = float(self._elbo(x[None], loc[None], scale[None])[0])
        return DigitView(index, x, loc, scale, recon, value)


class _Errorbars:
    """Mean ± scale per latent dimension as moving artists (points, bars, caps) of one colour."""

    def __init__(self, view: FigureView, ax, color: str, marker: str):
        self.points = view.moving(ax.plot([], [], marker, color=color, ms=6)[0])
        self.caps = view.moving(ax.plot([], [], "_", color=color, ms=8, mew=2)[0])
        self.bars = view.moving(ax.add_collection(LineCollection([], colors=color, linewidths=2)))

    def set(self, loc, scale, offset: float) -> None:
        dims = np.arange(len(loc)) + offset
        lo, hi = loc - scale, loc + scale
        self.points.set_data(dims, loc)
        self.caps.set_data(np.concatenate([dims, dims]), np.concatenate([lo, hi]))
        self.bars.set_segments([[(t, a), (t, b)] for t, a, b in zip(dims, lo, hi)])

    def set_visible(self, visible: bool) -> None:
        for artist in (self.points, self.caps, self.bars):
            artist.set_visible(visible)


class _AmortizationFigure:
    """Four digit panels and q(z|x) per latent dimension (network's, and refined), with a title."""

    def __init__(self, latent_dim: int, limit: float):
        self.view = view = FigureView(WIDTH, HEIGHT)
        self.title = view.static_only(view.fig.text(0.5, 0.97, "", ha="center", va="top", fontsize=10))
        self.panels = [view.digit(left, DIGITS_TOP, DIGIT_SIDE) for left in DIGITS_LEFT]
        for left, name in zip(DIGITS_LEFT, PANEL_TITLES):
            view.fig.text((left + DIGIT_SIDE / 2) / WIDTH, 1 - (DIGITS_TOP - 4) / HEIGHT, name, ha="center", va="bottom", fontsize=9)
        self.ax = ax = view.fig.add_axes((560 / WIDTH, 40 / HEIGHT, 330 / WIDTH, 170 / HEIGHT))
        ax.axhspan(-1, 1, color="0.9", zorder=0)
        ax.set(xticks=range(latent_dim), xlim=(-0.6, latent_dim - 0.4), xlabel="latent dimension", ylabel="mean ± scale")
        ax.legend(handles=[Patch(color="0.9", label="prior N(0,1) ±1"), Line2D([], [], marker="o", color=BLUE, label="network q(z|x)"),
                           Line2D([], [], marker="s", color=RED, label="refined")], loc="upper right", fontsize=7, ncol=3)
        self.limit = 0.0
        self._grow(limit)
        self.network = _Errorbars(view, ax, BLUE, "o")
        self.refined = _Errorbars(view, ax, RED, "s")

    def _grow(self, limit: float) -> None:
        """Widen the y axis to hold ±limit if it is narrower, so that nothing is clipped: by half its
        width at least (a full redraw costs many updates), to whole units."""
        if limit > self.limit:
            self.limit = float(math.ceil(max(limit, 1.5 * self.limit)))
            self.ax.set_ylim(-self.limit, self.limit)
            self.view.redraw()

    def png(self, shown: DigitView, original: np.ndarray, refined: DigitView | None) -> bytes:
        self._grow(max(float(np.max(np.abs(v.loc) + v.scale)) for v in (shown, refined or shown)))
        blank = np.zeros(NUM_PIXELS)
        for panel, pixels in zip(self.panels, (original, shown.x, shown.recon, refined.recon if refined else blank)):
            panel.set_data(ink(pixels, DIGIT_SCALE))
        offset = 0.15 if refined else 0.0
        self.network.set(shown.loc, shown.scale, -offset)
        self.refined.set_visible(refined is not None)
        if refined:
            self.refined.set(refined.loc, refined.scale, offset)
        self.title.set_text(_title(shown, refined))
        return self.view.png()


def _title(shown: DigitView, refined: DigitView | None) -> str:
    text = f"digit {shown.index}: amortized ELBO {shown.elbo:.2f} nats"
    if refined:
        return text + f", refined {refined.elbo:.2f} nats, gap {refined.elbo - shown.elbo:.2f} ({ELBO_SAMPLES}-sample estimates)"
    return text + f" ({ELBO_SAMPLES}-sample estimate)"


def _elbo_html(shown: DigitView, refined: DigitView | None, steps: int) -> str:
    html = (f"<b>amortized ELBO</b> (inference network's q): <b>{shown.elbo:.2f}</b> nats "
            f"<small>({ELBO_SAMPLES}-sample estimate, digit {shown.index})</small>")
    if refined:
        html += (f"<br><b>refined ELBO</b> after {steps} steps: <b>{refined.elbo:.2f}</b> nats; "
                 f"<b>gap = {refined.elbo - shown.elbo:.2f} nats</b> (refined − amortized)")
    return html


class _Curve:
    """The refinement's ELBO per step, its running mean, and the amortized ELBO as a dashed line."""

    def __init__(self):
        self.view = FigureView(368, 160)
        self.ax = ax = self.view.fig.add_axes((0.17, 0.24, 0.8, 0.71))
        (self.raw,) = ax.plot([], [], color=RED, lw=0.6, alpha=0.4, label="ELBO per step (1 sample)")
        (self.smooth,) = ax.plot([], [], color=RED, lw=2, label="running mean")
        self.start = ax.axhline(0, color=BLUE, ls="--", lw=1, label="amortized")
        ax.set(xlabel="refinement step", ylabel="ELBO (nats)")
        ax.legend(loc="lower right", fontsize=7)

    def png(self, values, start: float, total: int) -> bytes:
        """Lines and limits change every frame, so the whole (small) figure is drawn again."""
        values = np.asarray(values, np.float64)
        steps = np.arange(1, len(values) + 1)
        k = max(1, min(len(values), total // 20))
        smooth = np.convolve(values, np.ones(k) / k, mode="valid") if len(values) else values
        self.raw.set_data(steps, values)
        self.smooth.set_data(steps[k - 1 :], smooth)
        self.start.set_ydata([start, start])
        lo, hi = float(np.min(smooth, initial=start)), float(np.max(smooth, initial=start))
        pad = max(1.0, 0.1 * (hi - lo))
        self.ax.set(xlim=(0, max(total, 1)), ylim=(lo - pad, hi + pad))
        self.view.redraw()
        return self.view.png()


def _controls(n: int, refine_steps: int) -> dict:
    style, wide, button = {"description_width": "130px"}, W.Layout(width="420px"), W.Layout(width="140px")
    return {
        "index": W.IntSlider(0, 0, n - 1, description="test digit", style=style, layout=wide),
        "random": W.Button(description="random digit", icon="random", layout=button),
        "occlude": W.IntSlider(0, 0, 20, description="hide bottom rows", style=style, layout=wide),
        "noise": W.FloatSlider(0.0, min=0.0, max=0.3, step=0.01, description="flip pixels (p)", style=style, layout=wide),
        "steps": W.IntSlider(refine_steps, 10, max(2000, refine_steps), 10, description="refine steps", style=style, layout=wide),
        "refine": W.Button(description="refine q(z|x)", icon="play", button_style="primary", layout=button),
    }


def _views(figure: _AmortizationFigure, curve: _Curve) -> dict:
    views = {
        "figure": image_widget(figure.view, "infernet-amortization-figure"),
        "elbo": W.HTML(),
        "curve": image_widget(curve.view, "infernet-refinement-curve"),
        "progress": W.IntProgress(0, 0, 1, layout=W.Layout(width="300px")),
        "refine_text": W.HTML(),
    }
    views["elbo"].add_class("infernet-elbo")
    return views


def _equal_chunk(total: int, calls: int = 10) -> int:
    """The largest divisor of ``total`` that gives at least ``calls`` calls: one traced function."""
    chunk = max(1, -(-total // calls))
    while total % chunk:
        chunk -= 1
    return chunk


def _refined(digit: DigitView, scorer: _Scorer, network, decoder, prior, steps: int, learning_rate: float, callback):
    """``infer_local`` on this digit alone, started at the network's q, decoder frozen -> (view, history)."""
    import tensorflow as tf

    from .inference import infer_local

    factors, history = infer_local(digit.x[None], decoder, prior, steps=steps, init=network, learning_rate=learning_rate,
                                   progress=False, callback=callback, steps_per_call=_equal_chunk(steps), jit_compile=False)
    q = factors(None, tf.constant([0]))
    return scorer.view(digit.index, digit.x, np.asarray(q.mean())[0], np.asarray(q.stddev())[0]), history


class AmortizationExplorer(Explorer):
    """The widget `amortization_explorer` returns; `refine()` does what the button does."""

    def __init__(self, x_test: np.ndarray, network, decoder, prior, refine_steps: int, learning_rate: float):
        self._x, self._model, self._learning_rate = x_test, (network, decoder, prior), learning_rate
        self._locs, self._scales = q_params(network, x_test)  # once: an uncorrupted digit needs no forward pass
        self._scorer = _Scorer(network, decoder, prior, self._locs.shape[1])
        self._scorer.q(x_test[0])  # traced now, not on the first corruption
        self._figure = _AmortizationFigure(self._locs.shape[1], float(np.max(np.abs(self._locs) + self._scales)))
        self._curve = _Curve()
        self._rng = np.random.default_rng(0)
        self._shown: DigitView | None = None
        c, v = _controls(len(x_test), refine_steps), _views(self._figure, self._curve)
        super().__init__([W.HBox([c["index"], c["random"]]), c["occlude"], c["noise"], v["figure"], v["elbo"],
                          W.HBox([c["steps"], c["refine"], v["progress"]]), W.HBox([v["curve"], v["refine_text"]])],
                         c, v, "infernet-amortization-explorer", self._figure.view)
        for name in ("index", "occlude", "noise"):
            c[name].observe(self._update, names="value")
        c["random"].on_click(lambda _: setattr(c["index"], "value", int(self._rng.integers(len(x_test)))))
        c["refine"].on_click(lambda _: self.refine())
        self._update()

    def _render(self, refined: DigitView | None = None, steps: int = 0) -> None:
        original = self._x[self._shown.index]
        self.views["figure"].value = self._figure.png(self._shown, original, refined)
        self.views["elbo"].value = _elbo_html(self._shown, refined, steps)

    def _update(self, change=None) -> None:
        """A new digit or corruption: the network's q (computed once per clean digit) and its ELBO."""
        c = self.controls
        i, rows, noise = int(c["index"].value), int(c["occlude"].value), float(c["noise"].value)
        x = corrupt(self._x[i], rows, noise, seed=i)
        q = (self._locs[i], self._scales[i]) if rows == 0 and noise == 0 else self._scorer.q(x)
        self._shown = self._scorer.view(i, x, *q)
        self._render()
        for name in ("curve", "progress"):
            self.views[name].layout.display = "none"
        self.views["refine_text"].value = ""

    def refine(self) -> DigitView:
        """Refine q for the digit shown (its own local factors, decoder frozen); returns the refined view."""
        v, digit, total, t0 = self.views, self._shown, int(self.controls["steps"].value), time.perf_counter()
        v["progress"].max, v["progress"].value = total, 0
        v["curve"].value = self._curve.png([], digit.elbo, total)
        v["curve"].layout.display = v["progress"].layout.display = None
        last_frame = [t0]

        def live(history) -> None:
            v["progress"].value = int(history.steps)
            v["refine_text"].value = f"step {history.steps}/{total}, {time.perf_counter() - t0:.1f} s"
            if time.perf_counter() - last_frame[0] >= 0.5:  # a frame costs tens of ms: at most two a second
                v["curve"].value = self._curve.png(history.elbo, digit.elbo, total)
                last_frame[0] = time.perf_counter()

        self.controls["refine"].disabled = True
        try:
            refined, history = _refined(digit, self._scorer, *self._model, total, self._learning_rate, live)
        finally:
            self.controls["refine"].disabled = False
        v["curve"].value = self._curve.png(history.elbo, digit.elbo, total)
        v["refine_text"].value = (f"{total} Adam steps (learning rate {self._learning_rate:g}) on this digit's own "
                                  f"local factors, decoder frozen: {time.perf_counter() - t0:.1f} s")
        self._render(refined, total)
        return refined


def amortization_explorer(x_test, network, decoder, prior, *, refine_steps: int = 100,
                          learning_rate: float = 1e-2) -> AmortizationExplorer:
    """Pick a test digit, corrupt it if you like, and compare the inference network's q(z|x) with a refined one.

    x_test: ``[n, 784]`` binary (e.g. ``load_mnist("test", binarize="sample").images``); ``network``:
    the inference network (x -> q(z|x)). Shows the digit, what the network sees (after corruption),
    the reconstruction (the decoder's Bernoulli means at q's mean), q(z|x) per latent dimension and the
    amortized ELBO (a 100-sample estimate with a fixed seed). "refine" runs
    ``infer_local(x, decoder, prior, init=network)`` on this one digit: its own local factors, started
    at the network's output, optimized for ``steps`` Adam steps with the decoder frozen; the ELBO curve
    grows live and the gap between refined and amortized ELBO (this digit's amortization gap, in nats)
    is reported. Taught in notebook 02.
    """
    from .checks import check_binary

    x_test = check_digits(x_test, "amortization_explorer")
    check_binary(x_test, "amortization_explorer")
    explorer = AmortizationExplorer(x_test, network, decoder, prior, int(refine_steps), learning_rate)
    show(explorer, f"amortization explorer: {_title(explorer._shown, None)}")
    return explorer
