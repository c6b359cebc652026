"""What every explorer shares: a matplotlib figure shown as a PNG, redrawn by blitting, and one output
that carries the live widget together with a static picture of the same figure."""
from __future__ import annotations

import base64
import io

import ipywidgets as W
import numpy as np
from IPython.display import display
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
DPI = 80  # figure pixels per inch: figimage offsets and sizes below are in these pixels
STATIC_NOTE = "static picture: run the notebook in JupyterLab to explore"


def png_bytes(rgb: np.ndarray) -> bytes:
    """``[h, w, 3]`` uint8 -> PNG bytes (fast: zlib level 1)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="png", compress_level=1)
    return buf.getvalue()


class FigureView:
    """A matplotlib figure whose moving parts are redrawn on a saved background (blitting).

    The static parts (axes, ticks, legends, scatter clouds) are drawn once by `redraw`; artists
    registered with `moving` are left out of that draw and painted over a copy of the background
    on every `png`, so an update costs a few milliseconds instead of a full figure draw. Changing
    axis limits changes the background: call `redraw` first.
    """

    def __init__(self, width_px: int, height_px: int):
        self.fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
        self.canvas = FigureCanvasAgg(self.fig)
        self.width, self.height = width_px, height_px
        self._moving: list = []
        self._static_only: list = []
        self._background = None
        self.static_only(self.fig.text(0.005, 0.005, STATIC_NOTE, ha="left", va="bottom", fontsize=7, color="0.4"))

    def moving(self, artist):
        """Mark ``artist`` as redrawn on every update; returns it."""
        artist.set_animated(True)
        self._moving.append(artist)
        return artist

    def static_only(self, artist):
        """A moving artist drawn only in `static_png` (titles with numbers: text costs ~10 ms a frame,
        and the live explorer shows its numbers as widget text); returns it."""
        artist.set_visible(False)
        self._static_only.append(artist)
        return self.moving(artist)

    def digit(self, left: int, top: int, side: int):
        """A moving square image of ``side`` pixels at figure pixel (left, top), drawn unscaled."""
        blank = np.full((side, side, 3), 255, np.uint8)
        return self.moving(self.fig.figimage(blank, xo=left, yo=self.height - top - side, origin="upper"))

    def redraw(self) -> None:
        """Draw the static parts again (after axis limits or other static content changed)."""
        self.canvas.draw()
        self._background = self.canvas.copy_from_bbox(self.fig.bbox)

    def png(self) -> bytes:
        """The figure as it looks now: background plus every visible moving artist."""
        if self._background is None:
            self.redraw()
        self.canvas.restore_region(self._background)
        for artist in self._moving:
            if artist.get_visible():
                self.fig.draw_artist(artist)
        return png_bytes(np.asarray(self.canvas.buffer_rgba())[:, :, :3])

    def static_png(self) -> bytes:
        """`png` with the static-only artists: a note that the picture is static, titles with numbers."""
        for artist in self._static_only:
            artist.set_visible(True)
        try:
            return self.png()
        finally:
            for artist in self._static_only:
                artist.set_visible(False)


def image_widget(view: FigureView, css_class: str) -> W.Image:
    image = W.Image(format="png", layout=W.Layout(width=f"{view.width}px", height=f"{view.height}px"))
    image.add_class(css_class)
    return image


class Explorer(W.VBox):
    """A VBox with ``controls`` (sliders, buttons) and ``views`` (images, texts) by name; ``picture``
    is the figure that stands in for the widget where widgets cannot run."""

    def __init__(self, children, controls: dict, views: dict, css_class: str, picture: FigureView):
        super().__init__(children)
        self.controls = controls
        self.views = views
        self.picture = picture
        self.add_class(css_class)


def show(explorer: Explorer, text: str) -> None:
    """Display ONE output holding the live widget and a PNG of its picture (with the static note).

    JupyterLab ranks the widget mime type first and shows the live explorer; GitHub, nbconvert and
    nbval (and JupyterLab before the cell runs) cannot run it and show the picture.
    """
    bundle = {
        WIDGET_MIME: {"version_major": 2, "version_minor": 0, "model_id": explorer.model_id},
        "image/png": base64.b64encode(explorer.picture.static_png()).decode("ascii"),
        "text/plain": text,
    }
    display(bundle, raw=True)
