"""Interactive explorers for the notebooks (ipywidgets 8, JupyterLab 4).

    memory_explorer(network_params, latent_dim=10)             notebook 01: local factors vs network size
    amortization_explorer(x_test, network, decoder, prior)     notebook 02: amortized vs refined q(z|x)
    latent_explorer(network, decoder, x_test, labels)          notebook 03: a 2-D latent space

``network`` is the inference network (x -> q(z|x)). Each explorer draws one matplotlib figure
(`explorers.canvas.FigureView`): the static parts once, the moving parts on every interaction
(blitting), shown as a PNG in an ``ipywidgets.Image``. Each function displays ONE output that
carries both the live widget (``application/vnd.jupyter.widget-view+json``) and a PNG of the same
figure (``image/png``): JupyterLab shows the live explorer; GitHub, nbconvert and nbval, which
cannot run widgets, show the picture (nbconvert prefers the widget when the notebook saved its
widget state, so execute notebooks with ``--ExecutePreprocessor.store_widget_state=False``).
Each returns the widget, an `Explorer` whose ``controls`` and ``views`` dicts name its parts.

Speed: the network's outputs for the test digits are computed once; an interaction costs at most
one network and one decoder pass, the moving artists' redraw and a PNG encode, never any training.
Only the "refine" button of the amortization explorer optimizes anything: the local factors of
the one digit shown, with the decoder frozen, through the library's `infer_local`.
"""
from __future__ import annotations

from .explorers.amortization import ELBO_SAMPLES, ELBO_SEED, AmortizationExplorer, DigitView, amortization_explorer
from .explorers.canvas import Explorer
from .explorers.digits import corrupt
from .explorers.latent import latent_explorer
from .explorers.memory import memory_explorer
from .families import crossover_points  # notebook 01 calls widgets.crossover_points

__all__ = [
    "ELBO_SAMPLES",
    "ELBO_SEED",
    "AmortizationExplorer",
    "DigitView",
    "Explorer",
    "amortization_explorer",
    "corrupt",
    "crossover_points",
    "latent_explorer",
    "memory_explorer",
]
