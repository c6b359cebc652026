"""Notebook 01's explorer: the memory of local factors against an inference network's, over N."""
from __future__ import annotations

import ipywidgets as W
import numpy as np

from .checks import check_positive_int
from .families import BYTES_PER_NUMBER, crossover_points, local_factors_bytes
from .widget_canvas import Explorer, FigureView, image_widget, show

LANDMARKS = ((60_000, "MNIST"), (1_281_167, "ImageNet"))  # training-set sizes drawn for orientation


def human_bytes(n: float) -> str:
    """1234567 -> '1.2 MB' (powers of 1000; whole bytes below 1 kB)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:,.0f} B" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"


def _memory_figure(network_params: int, latent_dim: int, n_min: float, n_max: float):
    """The two memory lines on log axes; returns the view and its moving marker and vertical line."""
    view = FigureView(512, 288)
    ax = view.fig.add_axes((0.12, 0.15, 0.85, 0.82))
    ns = np.logspace(np.log10(n_min), np.log10(n_max), 200)
    net_bytes = network_params * BYTES_PER_NUMBER
    cross = crossover_points(network_params, latent_dim)
    ax.loglog(ns, local_factors_bytes(ns, latent_dim), color="tab:blue", lw=2, label=f"local factors: 2·N·d·4 B (d={latent_dim})")
    ax.axhline(net_bytes, color="tab:orange", lw=2, label=f"inference network: {network_params:,} params · 4 B")
    ax.axvline(cross, color="grey", ls=":", lw=1)
    ax.annotate(f"N* = {cross:,.0f}", (cross, net_bytes), textcoords="offset points", xytext=(6, -16), fontsize=9, color="grey")
    for size, name in LANDMARKS:
        if n_min < size < n_max:
            ax.axvline(size, color="0.75", lw=1)
            ax.text(size, local_factors_bytes(n_min, latent_dim), f" {name}", rotation=90, fontsize=7, color="0.45", va="bottom")
    ax.set(xlabel="number of data points N", ylabel="bytes (float32)", xlim=(n_min, n_max))
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    vline = view.moving(ax.axvline(n_min, color="tab:red", lw=2))
    marker = view.moving(ax.plot([], [], "o", ms=12, mfc="none", mec="tab:red", mew=2.5)[0])
    return view, marker, vline


def _describe(n: float, network_params: int, latent_dim: int) -> str:
    local = float(local_factors_bytes(n, latent_dim))
    net_bytes = network_params * BYTES_PER_NUMBER
    ratio = local / net_bytes
    side = "more" if ratio >= 1 else "less"
    return (f"N = {n:,.0f}: local factors {human_bytes(local)} ({2 * n * latent_dim:,.0f} numbers), "
            f"inference network {human_bytes(net_bytes)} (fixed). Local VI needs {max(ratio, 1 / ratio):,.1f}× {side}; "
            f"crossover at N* = {crossover_points(network_params, latent_dim):,.0f} points.")


def memory_explorer(network_params: int, latent_dim: int = 10, n_min: float = 10, n_max: float = 1e8) -> Explorer:
    """Slider over the data set size N (log scale): memory of local factors vs the inference network's.

    Local VI stores 2 N d float32 numbers; an inference network stores ``network_params`` numbers
    whatever N. The plot marks the chosen N and the crossover N* = network_params / (2 d).
    Taught in notebook 01.
    """
    check_positive_int(network_params, "network_params", " (e.g. network.count_params())")
    check_positive_int(latent_dim, "latent_dim")
    view, marker, vline = _memory_figure(network_params, latent_dim, n_min, n_max)
    slider = W.FloatLogSlider(value=60_000, base=10, min=np.log10(n_min), max=np.log10(n_max), step=0.05,
                              description="N", readout_format=",.0f", layout=W.Layout(width="420px"))
    image = image_widget(view, "infernet-memory-plot")
    text = W.HTML(layout=W.Layout(width="800px"))
    explorer = Explorer([slider, image, text], {"n": slider}, {"image": image, "text": text}, "infernet-memory-explorer", view)

    def update(change=None):
        n = float(slider.value)
        marker.set_data([n], [float(local_factors_bytes(n, latent_dim))])
        vline.set_xdata([n, n])
        image.value = view.png()
        text.value = _describe(n, network_params, latent_dim)

    slider.observe(update, names="value")
    update()
    show(explorer, text.value)
    return explorer
