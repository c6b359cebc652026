"""Progress bars for `fit` that stay readable after the run.

In a Jupyter kernel the bar is a live widget while training runs and is replaced, when it closes,
by one line of text (steps, time, ELBO): a saved notebook shows that line on GitHub and in
JupyterLab instead of a widget frozen at 0 %. Elsewhere (terminal, logs) it is tqdm's text bar.
"""
from __future__ import annotations

import sys

from tqdm import tqdm
from tqdm.notebook import tqdm as notebook_tqdm

from .settings import in_jupyter_kernel


class NotebookBar(notebook_tqdm):
    """tqdm's widget bar, shown through a display handle so that `finish` can replace it by text."""

    def __init__(self, *args, **kwargs):
        from IPython.display import display

        super().__init__(*args, display=False, **kwargs)
        self.handle = display(self.container, display_id=True)

    def finish(self, text: str) -> None:
        """Close the bar and put ``text`` where it was (live and in the saved notebook)."""
        self.close()
        self.handle.update({"text/plain": text}, raw=True)


def progress_bar(total: int, initial: int, desc: str, enabled: bool):
    """A bar over ``total`` steps starting at ``initial``; call `finish_bar` when done."""
    kwargs = dict(total=total, initial=initial, desc=desc, unit="step", leave=True, mininterval=0.5)
    if enabled and in_jupyter_kernel():
        return NotebookBar(**kwargs)
    return tqdm(disable=not enabled, file=sys.stderr, **kwargs)


def finish_bar(bar, text: str, enabled: bool) -> None:
    """Close ``bar``; its final words are ``text`` (replacing a notebook widget, else printed)."""
    if isinstance(bar, NotebookBar):
        bar.finish(text)
        return
    bar.close()
    if enabled:  # a line that stays readable where the bar does not (logs, CI output)
        print(text)
