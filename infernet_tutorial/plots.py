"""Figures for the notebooks. Drawing only: every number comes from the caller.

Each function draws into ``ax`` (a new figure when ``ax`` is None), labels its axes and returns
the Axes, so notebooks and tests can inspect what was drawn.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from .data import IMAGE_SIDE, NUM_PIXELS


def _axes(ax, figsize=(5, 3.5)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def image_grid(images, ncols: int = 10, ax=None, title: str | None = None, cmap: str = "gray_r"):
    """Show ``images: [n, 784]`` (values in [0, 1]) as one grid image, ``ncols`` per row (notebooks 03, 04, 06)."""
    images = np.asarray(images, np.float32)
    if images.ndim != 2 or images.shape[1] != NUM_PIXELS:
        raise ValueError(f"image_grid expects images of shape [n, 784], got {list(images.shape)}")
    if len(images) == 0:
        raise ValueError("image_grid got no images")
    n = len(images)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    grid = np.zeros((nrows * IMAGE_SIDE, ncols * IMAGE_SIDE), np.float32)
    for i, img in enumerate(images.reshape(n, IMAGE_SIDE, IMAGE_SIDE)):
        r, c = divmod(i, ncols)
        grid[r * IMAGE_SIDE : (r + 1) * IMAGE_SIDE, c * IMAGE_SIDE : (c + 1) * IMAGE_SIDE] = img
    ax = _axes(ax, figsize=(ncols * 0.6, nrows * 0.6 + 0.4))
    ax.imshow(grid, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def bytes_vs_n(ns, local_bytes, encoder_bytes: float, ax=None):
    """Memory of the variational parameters against the number of data points N (log-log) (notebook 01)."""
    ns, local_bytes = np.asarray(ns, float), np.asarray(local_bytes, float)
    if ns.shape != local_bytes.shape or ns.ndim != 1:
        raise ValueError(f"ns and local_bytes must be 1-D of equal length, got {ns.shape} and {local_bytes.shape}")
    ax = _axes(ax)
    ax.loglog(ns, local_bytes, "o-", label="local factors (one λ_n per point)")
    ax.loglog(ns, np.full_like(ns, float(encoder_bytes)), "s--", label="inference network (fixed θ)")
    ax.set_xlabel("number of data points N")
    ax.set_ylabel("variational parameters (bytes, float32)")
    ax.set_title("Memory of the variational family")
    ax.legend()
    return ax


def elbo_curve(elbo, ax=None, label: str | None = None, smooth: int = 1, title: str | None = None, xlabel: str = "optimization step"):
    """ELBO (nats) against step; ``smooth > 1`` draws a running mean over that many steps (notebooks 01, 02, 06)."""
    elbo = np.asarray(getattr(elbo, "elbo", elbo), float)
    if elbo.ndim != 1 or len(elbo) == 0:
        raise ValueError(f"elbo_curve expects a non-empty 1-D array (or a History), got shape {elbo.shape}")
    if smooth > 1 and len(elbo) >= smooth:
        elbo = np.convolve(elbo, np.ones(smooth) / smooth, mode="valid")
        steps = np.arange(smooth - 1, smooth - 1 + len(elbo))
    else:
        steps = np.arange(len(elbo))
    ax = _axes(ax)
    ax.plot(steps, elbo, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("ELBO (nats per digit)")
    if title:
        ax.set_title(title)
    if label:
        ax.legend()
    return ax


def latent_map(z, labels, ax=None, title: str = "2-D latent map (inference network means)"):
    """Scatter ``z: [n, 2]`` coloured by ``labels: [n]`` (digit classes) (notebook 03)."""
    z, labels = np.asarray(z, float), np.asarray(labels)
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(f"latent_map expects z of shape [n, 2], got {list(z.shape)}")
    if labels.shape != (len(z),):
        raise ValueError(f"latent_map expects {len(z)} labels, got shape {list(labels.shape)}")
    ax = _axes(ax, figsize=(5.5, 4.5))
    points = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=6, vmin=-0.5, vmax=9.5)
    ax.figure.colorbar(points, ax=ax, ticks=range(10), label="digit label")
    ax.set_xlabel("z₁")
    ax.set_ylabel("z₂")
    ax.set_title(title)
    return ax


def parity(exact, learned, ax=None, xlabel: str = "exact posterior", ylabel: str = "inference network", title: str | None = None):
    """Learned against exact values, with the line y = x (what a perfect inference network hits) (notebook 04)."""
    exact, learned = np.ravel(np.asarray(exact, float)), np.ravel(np.asarray(learned, float))
    if exact.shape != learned.shape:
        raise ValueError(f"exact and learned must have the same number of values, got {exact.size} and {learned.size}")
    ax = _axes(ax, figsize=(4, 4))
    lo, hi = float(min(exact.min(), learned.min())), float(max(exact.max(), learned.max()))
    ax.plot([lo, hi], [lo, hi], color="0.6", lw=1, label="y = x")
    ax.plot(exact, learned, "o", ms=3, label="values")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def posterior_2d(z1, z2, density, gaussians: dict | None = None, ax=None, title: str | None = None):
    """Contours of a 2-D posterior ``density: [len(z2), len(z1)]`` with Gaussian q's drawn over it (notebooks 02 and 05).

    ``gaussians``: {label: (loc [2], scale [2])}, each drawn as its 1- and 2-standard-deviation
    ellipses (axis-aligned: a diagonal Gaussian) and a cross at its mean.
    """
    from matplotlib.patches import Ellipse

    density = np.asarray(density, float)
    if density.shape != (len(z2), len(z1)):
        raise ValueError(f"density must have shape [len(z2), len(z1)] = {[len(z2), len(z1)]}, got {list(density.shape)}")
    ax = _axes(ax, figsize=(4.5, 4))
    ax.contourf(z1, z2, density, levels=12, cmap="Greys")
    ax.plot([], [], color="0.4", lw=6, label="exact p(z | x)")
    for i, (label, (loc, scale)) in enumerate((gaussians or {}).items()):
        color = f"C{i}"
        for k, ls in ((1, "-"), (2, "--")):
            ax.add_patch(Ellipse(tuple(loc), 2 * k * scale[0], 2 * k * scale[1], fill=False, color=color, ls=ls, lw=1.5))
        ax.plot(*loc, "x", color=color, ms=8, label=f"{label} (1 and 2 std)")
    ax.set_xlabel("z₁")
    ax.set_ylabel("z₂")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7, loc="upper right")
    return ax


def dots(names: Sequence[str], values, errors=None, ax=None, xlabel: str = "", title: str | None = None, fmt: str = "{:,.2f}"):
    """A dot plot: one labelled row per name, the value as a dot (± ``errors`` as a bar), annotated (notebook 03).

    For values where a bar's length means nothing (e.g. negative log-likelihoods): only positions
    are compared, on one shared x axis. ``errors``: half-widths (e.g. two standard errors) or None.
    """
    values = np.asarray(values, float)
    if len(names) != len(values) or values.ndim != 1:
        raise ValueError(f"dots got {len(names)} names but {values.size} values")
    if errors is not None and np.shape(errors) != values.shape:
        raise ValueError(f"errors must have the shape of values {list(values.shape)}, got {list(np.shape(errors))}")
    ax = _axes(ax, figsize=(5, 0.45 * len(values) + 1.2))
    rows = np.arange(len(values))[::-1]  # first name on top
    for i, (row, v) in enumerate(zip(rows, values)):
        err = None if errors is None else float(np.asarray(errors, float)[i])
        ax.errorbar(v, row, xerr=err, fmt="o", color=f"C{i}", capsize=3)
        ax.annotate(fmt.format(v), (v, row), xytext=(0, 6), textcoords="offset points", ha="center", fontsize=8)
    ax.set_yticks(rows, list(names))
    ax.set_ylim(-0.7, len(values) - 0.3)
    ax.margins(x=0.12)  # room for the annotations at both ends
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    if title:
        ax.set_title(title)
    return ax


def refinement_curves(curves: dict, ax=None, ylabel: str = "mean gap log p(x) − ELBO (nats)", title: str | None = None, logy: bool = True):
    """Test-time refinement from several starts: ``curves = {label: values [K_max + 1]}``, value after K steps (notebook 04).

    The x axis is K on a symlog scale (linear from 0 to 1, logarithmic beyond), so K = 0 (the start
    itself) and the first few steps are visible next to the hundreds that follow.
    """
    if not curves:
        raise ValueError("refinement_curves got no curves")
    ax = _axes(ax, figsize=(6, 4))
    for label, values in curves.items():
        values = np.asarray(values, float)
        if values.ndim != 1 or len(values) == 0:
            raise ValueError(f"curve {label!r} must be a non-empty 1-D array (value after K = 0, 1, 2, ... steps), got shape {list(values.shape)}")
        ax.plot(np.arange(len(values)), values, label=label)
    ax.set_xscale("symlog", linthresh=1)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("refinement steps K (symlog scale; K = 0 is the start)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return ax
