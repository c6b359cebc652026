"""Interactive explorers for the notebooks (ipywidgets 8, JupyterLab 4).

    memory_explorer(encoder_params, latent_dim=10)             notebook 01: local factors vs encoder size
    amortization_explorer(x_test, encoder, decoder, prior)     notebook 02: amortized vs refined q(z|x)
    latent_explorer(encoder, decoder, x_test, labels)          notebook 03: a 2-D latent space

Each function displays ONE output that carries both the live widget
(``application/vnd.jupyter.widget-view+json``) and a PNG of the same view (``image/png``).
JupyterLab ranks the widget mime type first and shows the live explorer; GitHub, nbconvert and
nbval, which cannot run widgets, show the picture (nbconvert prefers the widget when the notebook
saved its widget state, so execute notebooks with ``--ExecutePreprocessor.store_widget_state=False``).
Each returns the widget (an `Explorer`, a
``VBox`` whose ``controls`` and ``views`` dicts name its parts, for scripting and tests).

Speed: encoder outputs are computed once; an interaction costs at most one encoder and one
decoder forward pass and a PNG encode of small images (PIL), never any training. Only the
"refine" button of the amortization explorer optimizes anything: the local factors of the one
digit shown, with the decoder frozen, through the library's `infer_local`.
"""
from __future__ import annotations

import base64
import io
import time

import ipywidgets as W
import numpy as np
from IPython.display import display
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image as PILImage
from PIL import ImageDraw

from .data import IMAGE_SIDE, NUM_PIXELS

BYTES_PER_FLOAT = 4  # float32
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
ELBO_SAMPLES = 100  # Monte Carlo samples behind every ELBO number an explorer shows
ELBO_SEED = 1234


# ----------------------------------------------------------------------------- helpers


class Explorer(W.VBox):
    """A VBox with ``controls`` (sliders, buttons) and ``views`` (images, texts) by name."""

    def __init__(self, children, controls: dict, views: dict, **kwargs):
        super().__init__(children, **kwargs)
        self.controls = controls
        self.views = views
        self.fallback_png: bytes = b""  # the static picture displayed with the widget
        self.timings: list[float] = []  # seconds per interaction (update), newest last


def png_bytes(rgb: np.ndarray) -> bytes:
    """``[h, w]`` or ``[h, w, 3|4]`` uint8 -> PNG bytes (fast: low zlib level)."""
    buf = io.BytesIO()
    PILImage.fromarray(rgb).save(buf, format="png", compress_level=1)
    return buf.getvalue()


def digit_pixels(x, scale: int = 5) -> np.ndarray:
    """``[784]`` values in [0, 1] -> ``[28*scale, 28*scale]`` uint8, ink dark on white paper."""
    img = np.asarray(x, np.float32).reshape(IMAGE_SIDE, IMAGE_SIDE)
    img = (255 * (1 - np.clip(img, 0, 1))).astype(np.uint8)
    return np.kron(img, np.ones((scale, scale), np.uint8))


def digit_strip(images, gap: int = 6, scale: int = 5) -> np.ndarray:
    """Several digits side by side, separated by a light grey gap: ``[h, w]`` uint8."""
    tiles = [digit_pixels(x, scale) for x in images]
    h = tiles[0].shape[0]
    sep = np.full((h, gap), 200, np.uint8)
    parts = []
    for t in tiles:
        parts += [t, sep]
    return np.concatenate(parts[:-1], axis=1)


def figure_rgba(fig: Figure) -> np.ndarray:
    """Render a matplotlib figure (no pyplot, no inline output) to ``[h, w, 4]`` uint8."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def figure_png(fig: Figure) -> bytes:
    return png_bytes(figure_rgba(fig))


def _display_with_fallback(widget: Explorer, png: bytes, text: str) -> None:
    """One output: the live widget for JupyterLab, a PNG for every renderer without widgets."""
    widget.fallback_png = png
    bundle = {
        WIDGET_MIME: {"version_major": 2, "version_minor": 0, "model_id": widget.model_id},
        "image/png": base64.b64encode(png).decode("ascii"),
        "text/plain": text,
    }
    display(bundle, raw=True)


def _timed(widget: Explorer, fn):
    """Wrap an update function so that each call's wall time lands in ``widget.timings``."""

    def run(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            widget.timings.append(time.perf_counter() - t0)

    return run


def _human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class _MarkedPlot:
    """A matplotlib plot rendered ONCE; each update only draws a marker on the pixels (PIL).

    ``to_pixel(x, y)`` maps data coordinates of ``ax`` to image pixels (origin top-left).
    """

    def __init__(self, fig: Figure, ax):
        self.base = figure_rgba(fig)
        self.height = self.base.shape[0]
        self.ax = ax
        self.trans = ax.transData

    def to_pixel(self, x: float, y: float) -> tuple[float, float]:
        px, py = self.trans.transform((x, y))
        return float(px), float(self.height - py)

    def with_marker(self, x: float, y: float, *, vline: bool = False, color=(220, 30, 30), radius: int = 7) -> np.ndarray:
        img = PILImage.fromarray(self.base)
        draw = ImageDraw.Draw(img)
        px, py = self.to_pixel(x, y)
        if vline:
            (_, top), (_, bottom) = self.to_pixel(x, self.ax.get_ylim()[1]), self.to_pixel(x, self.ax.get_ylim()[0])
            draw.line([(px, top), (px, bottom)], fill=color, width=2)
        draw.ellipse([px - radius, py - radius, px + radius, py + radius], outline=color, width=3)
        draw.line([(px - radius - 4, py), (px + radius + 4, py)], fill=color, width=2)
        draw.line([(px, py - radius - 4), (px, py + radius + 4)], fill=color, width=2)
        return np.asarray(img)


# ----------------------------------------------------------------------------- notebook 01


def memory_bytes(num_points, latent_dim: int = 10) -> np.ndarray:
    """Bytes of mean-field local factors: 2 N d float32 numbers (a loc and a scale per dimension)."""
    return 2 * np.asarray(num_points, np.float64) * latent_dim * BYTES_PER_FLOAT


def crossover_points(encoder_params: int, latent_dim: int = 10) -> float:
    """The N at which local factors need as many numbers as the encoder: encoder_params / (2 d)."""
    return encoder_params / (2 * latent_dim)


def memory_explorer(encoder_params: int, latent_dim: int = 10, n_min: float = 10, n_max: float = 1e8) -> Explorer:
    """Slider over the data set size N (log scale): memory of local factors vs the encoder's.

    Local VI stores 2 N d float32 numbers; an inference network stores ``encoder_params`` numbers
    whatever N. The plot marks the chosen N and the crossover N* = encoder_params / (2 d).
    """
    if not isinstance(encoder_params, (int, np.integer)) or encoder_params <= 0:
        raise ValueError(f"encoder_params must be a positive integer (e.g. encoder.count_params()), got {encoder_params!r}")
    if not isinstance(latent_dim, (int, np.integer)) or latent_dim <= 0:
        raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}")
    enc_bytes = encoder_params * BYTES_PER_FLOAT
    cross = crossover_points(encoder_params, latent_dim)

    fig = Figure(figsize=(6.4, 3.6), dpi=80)
    ax = fig.add_subplot()
    ns = np.logspace(np.log10(n_min), np.log10(n_max), 200)
    ax.loglog(ns, memory_bytes(ns, latent_dim), color="tab:blue", lw=2, label=f"local factors: 2·N·d·4 B (d={latent_dim})")
    ax.axhline(enc_bytes, color="tab:orange", lw=2, label=f"inference network: {encoder_params:,} params · 4 B")
    ax.axvline(cross, color="grey", ls=":", lw=1)
    ax.annotate(f"N* = {cross:,.0f}", (cross, enc_bytes), textcoords="offset points", xytext=(6, -16), fontsize=9, color="grey")
    for size, name in ((60_000, "MNIST"), (1_281_167, "ImageNet")):
        if n_min < size < n_max:
            ax.axvline(size, color="0.75", lw=1)
            ax.text(size, memory_bytes(n_min, latent_dim), f" {name}", rotation=90, fontsize=7, color="0.45", va="bottom")
    ax.set_xlabel("number of data points N")
    ax.set_ylabel("bytes (float32)")
    ax.set_xlim(n_min, n_max)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    plot = _MarkedPlot(fig, ax)

    slider = W.FloatLogSlider(value=60000, base=10, min=np.log10(n_min), max=np.log10(n_max), step=0.05,
                              description="N", readout_format=",.0f", continuous_update=True,
                              layout=W.Layout(width="420px"))
    image = W.Image(format="png", layout=W.Layout(width=f"{plot.base.shape[1]}px"))
    text = W.HTML(layout=W.Layout(width=f"{plot.base.shape[1] + 60}px"))
    box = Explorer([slider, image, text], {"n": slider}, {"image": image, "text": text})
    box.add_class("infernet-memory-explorer")

    def describe(n: float) -> str:
        local = float(memory_bytes(n, latent_dim))
        ratio = local / enc_bytes
        side = "more" if ratio >= 1 else "less"
        return (f"N = {n:,.0f}: local factors {_human_bytes(local)} ({2 * n * latent_dim:,.0f} numbers), "
                f"inference network {_human_bytes(enc_bytes)} (fixed). Local VI needs {max(ratio, 1 / ratio):,.1f}× {side}; "
                f"crossover at N* = {cross:,.0f} points.")

    def update(change=None):
        n = float(slider.value)
        local = float(memory_bytes(n, latent_dim))
        image.value = png_bytes(plot.with_marker(n, local, vline=True))
        text.value = describe(n)

    slider.observe(_timed(box, update), names="value")
    update()
    box.timings.clear()
    fallback = png_bytes(plot.with_marker(float(slider.value), float(memory_bytes(slider.value, latent_dim)), vline=True))
    _display_with_fallback(box, fallback, describe(float(slider.value)))
    return box


# ----------------------------------------------------------------------------- notebook 02


def _encoder_params(encoder, x) -> tuple[np.ndarray, np.ndarray]:
    """(loc, scale) of q(z|x) for ``x: [n, 784]`` as numpy, in batches of 1000."""
    import tensorflow as tf

    locs, scales = [], []
    for start in range(0, len(x), 1000):
        xb = tf.constant(x[start : start + 1000])
        if hasattr(encoder, "params"):
            loc, scale = encoder.params(xb)
        else:
            q = encoder(xb)
            loc, scale = q.mean(), q.stddev()
        locs.append(np.asarray(loc))
        scales.append(np.asarray(scale))
    return np.concatenate(locs), np.concatenate(scales)


def corrupt(x, occlude_rows: int = 0, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """A corrupted copy of one binary digit ``x: [784]``.

    ``occlude_rows``: the bottom rows are blanked (set to 0); ``noise``: each pixel is flipped with
    this probability (a fixed random pattern per ``seed``, so moving the slider adds flips).
    """
    img = np.array(x, np.float32).reshape(IMAGE_SIDE, IMAGE_SIDE)
    if noise > 0:
        u = np.random.default_rng(seed).random(img.shape)
        img = np.where(u < noise, 1 - img, img)
    if occlude_rows > 0:
        img[IMAGE_SIDE - occlude_rows :] = 0
    return img.reshape(NUM_PIXELS).astype(np.float32)


Q_LIMIT = 4.0  # the q(z|x) plot shows latent values in [-4, 4]; beyond that, bars are clipped


class _QPlot:
    """Means ± scales of q(z|x) per latent dimension, the prior N(0, 1) as a grey band.

    The axes are drawn once with matplotlib; each update draws the error bars with PIL (~1 ms
    instead of ~100 ms for a matplotlib redraw).
    """

    BLUE, RED = (31, 119, 180), (214, 39, 40)

    def __init__(self, latent_dim: int, width: float = 4.6, height: float = 2.6):
        self.d = latent_dim
        fig = _q_figure(np.zeros(latent_dim), np.zeros(latent_dim), width=width, height=height, empty=True)
        self.plot = _MarkedPlot(fig, fig.axes[0])

    def _bars(self, draw, loc, scale, offset, color, square):
        for i, (m, s) in enumerate(zip(loc, scale)):
            lo, hi = max(m - s, -Q_LIMIT), min(m + s, Q_LIMIT)
            x, y = self.plot.to_pixel(i + offset, float(np.clip(m, -Q_LIMIT, Q_LIMIT)))
            _, ylo = self.plot.to_pixel(i + offset, lo)
            _, yhi = self.plot.to_pixel(i + offset, hi)
            draw.line([(x, ylo), (x, yhi)], fill=color, width=2)
            draw.line([(x - 4, ylo), (x + 4, ylo)], fill=color, width=2)
            draw.line([(x - 4, yhi), (x + 4, yhi)], fill=color, width=2)
            box = [x - 4, y - 4, x + 4, y + 4]
            (draw.rectangle if square else draw.ellipse)(box, fill=color)

    def render(self, loc, scale, refined=None) -> np.ndarray:
        img = PILImage.fromarray(self.plot.base)
        draw = ImageDraw.Draw(img)
        off = 0.15 if refined is not None else 0.0
        self._bars(draw, loc, scale, -off, self.BLUE, square=False)
        if refined is not None:
            self._bars(draw, refined[0], refined[1], off, self.RED, square=True)
        return np.asarray(img)


def _q_figure(loc, scale, refined=None, width=4.6, height=2.6, ax=None, empty=False):
    """The q(z|x) plot in matplotlib (static figures; ``empty=True``: axes and legend only)."""
    fig = None
    if ax is None:
        fig = Figure(figsize=(width, height), dpi=80)
        ax = fig.add_subplot()
    d = len(loc)
    dims = np.arange(d)
    ax.axhspan(-1, 1, color="0.9", zorder=0, label="prior N(0,1) ±1")
    off = 0.15 if refined is not None else 0.0
    if empty:  # legend entries only, the bars are drawn by _QPlot
        ax.errorbar([], [], yerr=[], fmt="o", color="tab:blue", capsize=3, label="inference network q(z|x)")
        ax.errorbar([], [], yerr=[], fmt="s", color="tab:red", capsize=3, label="refined")
    else:
        ax.errorbar(dims - off, np.clip(loc, -Q_LIMIT, Q_LIMIT), yerr=scale, fmt="o", color="tab:blue", capsize=3, label="inference network q(z|x)")
        if refined is not None:
            ax.errorbar(dims + off, np.clip(refined[0], -Q_LIMIT, Q_LIMIT), yerr=refined[1], fmt="s", color="tab:red", capsize=3, label="refined")
    ax.set_xticks(dims)
    ax.set_xlim(-0.6, d - 0.4)
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("mean ± scale")
    ax.set_ylim(-Q_LIMIT, Q_LIMIT)
    ax.legend(loc="upper right", fontsize=7, ncol=3)
    if fig is not None:
        fig.tight_layout()
    return fig


class _Curve:
    """The refinement's ELBO curve: one persistent figure whose lines are updated (~40 ms a frame)."""

    def __init__(self, width=4.6, height=2.0):
        self.fig = Figure(figsize=(width, height), dpi=80)
        self.fig.subplots_adjust(left=0.17, right=0.97, bottom=0.24, top=0.95)
        self.size = (int(width * 80), int(height * 80))  # pixels
        self.ax = ax = self.fig.add_subplot()
        (self.raw,) = ax.plot([], [], color="tab:red", lw=0.6, alpha=0.4, label="ELBO per step (1 sample)")
        (self.smooth,) = ax.plot([], [], color="tab:red", lw=2, label="running mean")
        self.start = ax.axhline(0, color="tab:blue", ls="--", lw=1, label="amortized")
        ax.set_xlabel("refinement step")
        ax.set_ylabel("ELBO (nats)")
        ax.legend(loc="lower right", fontsize=7)

    def png(self, values: np.ndarray, start: float, total: int) -> bytes:
        values = np.asarray(values, np.float64)
        steps = np.arange(1, len(values) + 1)
        self.raw.set_data(steps, values)
        k = max(1, min(len(values), total // 20))
        smooth = np.convolve(values, np.ones(k) / k, mode="valid") if len(values) else values
        self.smooth.set_data(steps[k - 1 :], smooth)
        self.start.set_ydata([start, start])
        both = np.concatenate([smooth, [start]]) if len(values) else np.array([start])
        lo, hi = float(np.min(both)), float(np.max(both))
        pad = max(1.0, 0.1 * (hi - lo))
        self.ax.set_xlim(0, max(total, 1))
        self.ax.set_ylim(lo - pad, hi + pad)
        return figure_png(self.fig)


def amortization_explorer(x_test, encoder, decoder, prior, *, refine_steps: int = 100, learning_rate: float = 1e-2) -> Explorer:
    """Pick a test digit, corrupt it if you like, and compare the encoder's q(z|x) with a refined one.

    x_test: ``[n, 784]`` binary (e.g. ``load_mnist("test", binarize="sample").images``).
    Shows the digit, what the encoder sees (after corruption), the reconstruction (Bernoulli means
    of the decoder at q's mean), q(z|x) per latent dimension and the amortized ELBO (a 100-sample
    estimate with a fixed seed). "refine" runs ``infer_local(x, decoder, prior, init=encoder)``
    on this one digit: its own local factors, started at the encoder's output, optimized for
    ``steps`` Adam steps with the decoder frozen; the ELBO curve grows live and the gap between
    amortized and refined ELBO (the amortization gap of this digit, in nats) is reported.
    """
    import tensorflow as tf

    from .families import diag_gaussian
    from .inference import infer_local
    from .objectives import check_binary
    from .objectives import elbo

    x_test = np.asarray(x_test, np.float32)
    if x_test.ndim != 2 or x_test.shape[1] != NUM_PIXELS or len(x_test) == 0:
        raise ValueError(f"amortization_explorer expects x_test of shape [n, {NUM_PIXELS}], got {list(x_test.shape)}")
    check_binary(x_test, "amortization_explorer")
    n = len(x_test)
    base_loc, base_scale = _encoder_params(encoder, x_test)  # once; uncorrupted digits need no forward pass
    d = base_loc.shape[1]

    @tf.function(input_signature=[tf.TensorSpec([1, d], tf.float32)], autograph=False)
    def decode_mean(z):
        return tf.sigmoid(decoder.logits(z))

    @tf.function(input_signature=[tf.TensorSpec([1, NUM_PIXELS], tf.float32)] + [tf.TensorSpec([1, d], tf.float32)] * 2, autograph=False)
    def score(x, loc, scale):
        return elbo(x, diag_gaussian(loc, scale), decoder, prior, num_samples=ELBO_SAMPLES, seed=ELBO_SEED)

    @tf.function(input_signature=[tf.TensorSpec([1, NUM_PIXELS], tf.float32)], autograph=False)
    def encode(x):
        if hasattr(encoder, "params"):
            return encoder.params(x)
        q = encoder(x)
        return q.mean(), q.stddev()

    encode(tf.constant(x_test[:1]))  # trace the three functions now, not on the first interaction
    score(tf.constant(x_test[:1]), tf.constant(base_loc[:1]), tf.constant(base_scale[:1]))
    decode_mean(tf.constant(base_loc[:1]))

    style = {"description_width": "130px"}
    index = W.IntSlider(value=0, min=0, max=n - 1, description="test digit", continuous_update=True, style=style,
                        layout=W.Layout(width="420px"))
    random_button = W.Button(description="random digit", icon="random", layout=W.Layout(width="140px"))
    occlude = W.IntSlider(value=0, min=0, max=20, description="hide bottom rows", style=style, layout=W.Layout(width="420px"))
    noise = W.FloatSlider(value=0.0, min=0.0, max=0.3, step=0.01, description="flip pixels (p)", style=style,
                          layout=W.Layout(width="420px"))
    steps = W.IntSlider(value=int(refine_steps), min=10, max=max(2000, int(refine_steps)), step=10,
                        description="refine steps", style=style, layout=W.Layout(width="420px"))
    refine_button = W.Button(description="refine q(z|x)", icon="play", button_style="primary", layout=W.Layout(width="140px"))
    progress = W.IntProgress(value=0, min=0, max=1, description="", layout=W.Layout(width="300px", visibility="hidden"))
    digits = W.Image(format="png", layout=W.Layout(width="578px", height="140px"))
    digits.add_class("infernet-digits")
    caption = W.HTML("<small>original &nbsp;|&nbsp; network input &nbsp;|&nbsp; reconstruction (network) "
                     "&nbsp;|&nbsp; reconstruction (refined)</small>")
    qdraw = _QPlot(d)
    curve_plot = _Curve()
    qplot = W.Image(format="png", layout=W.Layout(width=f"{qdraw.plot.base.shape[1]}px"))
    curve = W.Image(format="png", layout=W.Layout(display="none", width=f"{curve_plot.size[0]}px"))
    refine_text = W.HTML()
    elbo_text = W.HTML()
    elbo_text.add_class("infernet-elbo")
    rng = np.random.default_rng(0)

    box = Explorer(
        [
            W.HBox([index, random_button]),
            occlude,
            noise,
            W.HBox([W.VBox([digits, caption]), qplot]),
            elbo_text,
            W.HBox([steps, refine_button, progress]),
            W.HBox([curve, refine_text]),
        ],
        {"index": index, "random": random_button, "occlude": occlude, "noise": noise, "steps": steps, "refine": refine_button},
        {"digits": digits, "q": qplot, "elbo": elbo_text, "curve": curve, "progress": progress, "refine_text": refine_text},
    )
    box.add_class("infernet-amortization-explorer")
    state: dict = {}

    def current_input() -> np.ndarray:
        return corrupt(x_test[index.value], occlude.value, noise.value, seed=index.value)

    def elbo_html(s) -> str:
        html = (f"<b>amortized ELBO</b> (inference network's q): <b>{s['elbo']:.2f}</b> nats "
                f"<small>({ELBO_SAMPLES}-sample estimate, digit {s['index']})</small>")
        if s.get("refined_elbo") is not None:
            gap = s["refined_elbo"] - s["elbo"]
            html += (f"<br><b>refined ELBO</b> after {s['refined_steps']} steps: <b>{s['refined_elbo']:.2f}</b> nats; "
                     f"<b>gap = {gap:.2f} nats</b> (refined − amortized)")
        return html

    def render_digits(s) -> np.ndarray:
        images = [x_test[s["index"]], s["x"], s["recon"]]
        images.append(s["refined_recon"] if s.get("refined_recon") is not None else np.zeros(NUM_PIXELS))
        return digit_strip(images)

    def compute(s):
        x = s["x"][None]
        if s["clean"]:
            loc, scale = base_loc[s["index"]][None], base_scale[s["index"]][None]
        else:
            loc, scale = (np.asarray(t) for t in encode(tf.constant(x)))
        s["loc"], s["scale"] = loc[0], scale[0]
        s["recon"] = np.asarray(decode_mean(tf.constant(loc)))[0]
        s["elbo"] = float(score(tf.constant(x), tf.constant(loc), tf.constant(scale))[0])

    def update(change=None):
        s = {"index": int(index.value), "x": current_input(), "clean": occlude.value == 0 and noise.value == 0,
             "refined_elbo": None, "refined_recon": None}
        compute(s)
        state.clear()
        state.update(s)
        digits.value = png_bytes(render_digits(s))
        qplot.value = png_bytes(qdraw.render(s["loc"], s["scale"]))
        elbo_text.value = elbo_html(s)
        curve.layout.display = "none"
        progress.layout.visibility = "hidden"
        refine_text.value = ""

    def pick_random(_=None):
        index.value = int(rng.integers(n))

    def refine(_=None):
        refine_button.disabled = True
        try:
            s = state
            total = int(steps.value)
            chunk = max(1, -(-total // 10))  # about 10 live updates of the curve
            while total % chunk:  # equal chunks: one traced function for the whole run
                chunk -= 1
            progress.max, progress.value = total, 0
            progress.layout.visibility = "visible"
            t0 = time.perf_counter()
            drawn = [t0]

            def live(history):
                progress.value = int(history.steps)
                now = time.perf_counter()
                refine_text.value = f"step {history.steps}/{total}, {now - t0:.1f} s"
                if now - drawn[0] >= 0.5:  # a matplotlib frame costs ~40-120 ms: at most two a second
                    curve.value = curve_plot.png(history.elbo, s["elbo"], total)
                    curve.layout.display = None
                    drawn[0] = time.perf_counter()

            factors, history = infer_local(s["x"][None], decoder, prior, steps=total, init=encoder,
                                           learning_rate=learning_rate, progress=False, callback=live,
                                           steps_per_call=chunk, jit_compile=False)
            q = factors(None, tf.constant([0]))
            loc, scale = np.asarray(q.mean()), np.asarray(q.stddev())
            s["refined_elbo"] = float(score(tf.constant(s["x"][None]), tf.constant(loc), tf.constant(scale))[0])
            s["refined_steps"] = total
            s["refined_recon"] = np.asarray(decode_mean(tf.constant(loc)))[0]
            s["refined_q"] = (loc[0], scale[0])
            progress.value = total
            refine_text.value = (f"{total} Adam steps (learning rate {learning_rate:g}) on this digit's own "
                                 f"local factors, decoder frozen: {time.perf_counter() - t0:.1f} s")
            curve.value = curve_plot.png(history.elbo, s["elbo"], total)
            curve.layout.display = None
            digits.value = png_bytes(render_digits(s))
            qplot.value = png_bytes(qdraw.render(s["loc"], s["scale"], refined=s["refined_q"]))
            elbo_text.value = elbo_html(s)
        finally:
            refine_button.disabled = False

    timed = _timed(box, update)
    for w in (index, occlude, noise):
        w.observe(timed, names="value")
    random_button.on_click(pick_random)
    refine_button.on_click(refine)
    update()
    box.refine = refine  # callable from code (tests, scripted demos): same as pressing the button
    box.state = state

    # the static picture: the same view as one matplotlib figure
    fig = Figure(figsize=(9.6, 3.0), dpi=80)
    grid = fig.add_gridspec(1, 5, width_ratios=[1, 1, 1, 0.15, 3.2])
    for i, (img, title) in enumerate([(x_test[state["index"]], "original"), (state["x"], "network input"), (state["recon"], "reconstruction")]):
        a = fig.add_subplot(grid[0, i])
        a.imshow(np.asarray(img).reshape(IMAGE_SIDE, IMAGE_SIDE), cmap="gray_r", vmin=0, vmax=1)
        a.set_title(title, fontsize=9)
        a.axis("off")
    _q_figure(state["loc"], state["scale"], ax=fig.add_subplot(grid[0, 4]))
    fig.suptitle(f"digit {state['index']}: amortized ELBO {state['elbo']:.2f} nats ({ELBO_SAMPLES}-sample estimate)"
                 " — run the notebook in JupyterLab for the interactive explorer", fontsize=9)
    fig.tight_layout()
    _display_with_fallback(box, figure_png(fig), f"amortization explorer: digit {state['index']}, ELBO {state['elbo']:.2f} nats")
    return box


# ----------------------------------------------------------------------------- notebook 03


def latent_explorer(encoder, decoder, x_test, labels, *, max_points: int = 5000) -> Explorer:
    """For a model with a 2-D latent space: pick z with two sliders, see the decoded digit.

    The map shows the encoder's means of (up to ``max_points``) test digits coloured by label, with
    the chosen z marked; the map is drawn once, each move decodes one z (one forward pass).
    """
    import tensorflow as tf

    x_test = np.asarray(x_test, np.float32)
    labels = np.asarray(labels)
    if x_test.ndim != 2 or x_test.shape[1] != NUM_PIXELS:
        raise ValueError(f"latent_explorer expects x_test of shape [n, {NUM_PIXELS}], got {list(x_test.shape)}")
    if len(labels) != len(x_test):
        raise ValueError(f"latent_explorer got {len(x_test)} digits but {len(labels)} labels; they must match")
    x_test, labels = x_test[:max_points], labels[:max_points]
    loc, _ = _encoder_params(encoder, x_test)
    if loc.shape[1] != 2:
        raise ValueError(f"latent_explorer needs a model with latent_dim=2, got latent_dim={loc.shape[1]}")

    @tf.function(input_signature=[tf.TensorSpec([1, 2], tf.float32)], autograph=False)
    def decode_mean(z):
        return tf.sigmoid(decoder.logits(z))

    lo = np.minimum(np.percentile(loc, 0.5, axis=0), -3.0)
    hi = np.maximum(np.percentile(loc, 99.5, axis=0), 3.0)
    fig = Figure(figsize=(4.6, 4.2), dpi=80)
    ax = fig.add_subplot()
    sc = ax.scatter(loc[:, 0], loc[:, 1], c=labels, cmap="tab10", s=4, alpha=0.6, vmin=-0.5, vmax=9.5, linewidths=0)
    cbar = fig.colorbar(sc, ax=ax, ticks=range(10))
    cbar.set_label("digit label")
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    ax.set_title("inference network means of test digits", fontsize=10)
    fig.tight_layout()
    plot = _MarkedPlot(fig, ax)

    start = np.round(np.median(loc, axis=0), 2)  # begin among the data, not necessarily at 0
    z1 = W.FloatSlider(value=float(start[0]), min=float(lo[0]), max=float(hi[0]), step=0.05, description="z1", layout=W.Layout(width="380px"))
    z2 = W.FloatSlider(value=float(start[1]), min=float(lo[1]), max=float(hi[1]), step=0.05, description="z2", layout=W.Layout(width="380px"))
    mapview = W.Image(format="png", layout=W.Layout(width=f"{plot.base.shape[1]}px"))
    decoded = W.Image(format="png", layout=W.Layout(width="168px", height="168px"))
    decoded.add_class("infernet-decoded")
    text = W.HTML(layout=W.Layout(width="260px"))
    box = Explorer([z1, z2, W.HBox([mapview, W.VBox([decoded, text], layout=W.Layout(margin="40px 0 0 10px"))])], {"z1": z1, "z2": z2},
                   {"map": mapview, "decoded": decoded, "text": text})
    box.add_class("infernet-latent-explorer")

    def view(a: float, b: float):
        img = np.asarray(decode_mean(tf.constant([[a, b]], tf.float32)))[0]
        nearest = int(np.argmin(np.sum((loc - [a, b]) ** 2, axis=1)))
        caption = (f"decoded p(x|z) means<br>at z = ({a:.2f}, {b:.2f})<br>"
                   f"nearest encoded test digit: label {labels[nearest]}")
        return img, caption

    def update(change=None):
        a, b = round(float(z1.value), 4) + 0.0, round(float(z2.value), 4) + 0.0  # no "-0.00"
        img, caption = view(a, b)
        mapview.value = png_bytes(plot.with_marker(a, b))
        decoded.value = png_bytes(digit_pixels(img, scale=6))
        text.value = caption

    timed = _timed(box, update)
    z1.observe(timed, names="value")
    z2.observe(timed, names="value")
    update()

    img, caption = view(float(z1.value), float(z2.value))
    fig2 = Figure(figsize=(7.6, 4.2), dpi=80)
    grid = fig2.add_gridspec(1, 2, width_ratios=[1.7, 1])
    a = fig2.add_subplot(grid[0, 0])
    a.imshow(plot.with_marker(float(z1.value), float(z2.value)))
    a.axis("off")
    b = fig2.add_subplot(grid[0, 1])
    b.imshow(img.reshape(IMAGE_SIDE, IMAGE_SIDE), cmap="gray_r", vmin=0, vmax=1)
    b.set_title(f"decoded at z = ({z1.value:.2f}, {z2.value:.2f})", fontsize=9)
    b.axis("off")
    fig2.tight_layout()
    _display_with_fallback(box, figure_png(fig2), f"latent explorer at z = ({z1.value:.2f}, {z2.value:.2f})")
    return box
