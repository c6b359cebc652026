"""Interactive explorers for the notebooks (ipywidgets 8, JupyterLab 4).

    memory_explorer(network_params, latent_dim=10)             notebook 01: local factors vs network size
    amortization_explorer(x_test, network, decoder, prior)     notebook 02: amortized vs refined q(z|x)
    latent_explorer(network, decoder, x_test, labels)          notebook 03: a 2-D latent space

``network`` is the inference network (x -> q(z|x)). One module per explorer (`widget_memory`,
`widget_amortization`, `widget_latent`) on two shared ones: `widget_digits` (input checks,
corruption, digit pixels, q(z|x) per digit) and `widget_canvas`: each explorer draws one matplotlib
figure, its static parts once and its moving parts on every interaction (blitting), shown as a PNG
in an ``ipywidgets.Image``.

Each function displays ONE output that carries both the live widget
(``application/vnd.jupyter.widget-view+json``) and a PNG of the same figure (``image/png``, with a
note that it is static): JupyterLab shows the live explorer; GitHub, nbconvert and nbval, which
cannot run widgets, show the picture (nbconvert prefers the widget when the notebook saved its
widget state, so execute notebooks with ``--ExecutePreprocessor.store_widget_state=False``).
Each returns the widget, an `Explorer` whose ``controls`` and ``views`` dicts name its parts.

Speed: the network's outputs for the test digits are computed once; an interaction costs at most
one network and one decoder pass, the moving artists' redraw and a PNG encode, never any training.
Only the "refine" button of the amortization explorer optimizes anything: the local factors of
the one digit shown, with the decoder frozen, through the library's `infer_local`.
"""
from __future__ import annotations

from .families import crossover_points  # notebook 01 calls widgets.crossover_points
from .widget_amortization import ELBO_SAMPLES, ELBO_SEED, AmortizationExplorer, DigitView, amortization_explorer
from .widget_canvas import Explorer
from .widget_digits import corrupt
from .widget_latent import latent_explorer
from .widget_memory import memory_explorer

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
