"""A plan page's trend plots: drawn with matplotlib from plain data, in a helper process when one can run.

Importing matplotlib takes ~0.6 s and three plots ~0.4 s: most of an incremental site build after new runs.
`Painter` starts `python -m impactbook.site.plots` when the site command begins; the helper imports matplotlib
while the command reconciles and checks runs, then draws the plots it is sent while the build writes other
pages. The helper runs the very `draw` below, so its images are byte for byte those drawn in the build's own
process, which is where they are drawn when the helper cannot start or fails.
"""

from __future__ import annotations

import base64
import io
import json
import sys
import time
from typing import Any

from ..processes import Helper

TrendSpec = dict[str, Any]  # title, axis labels, series (label, colour, x, y, low, high), margin: plain JSON


def draw(spec: TrendSpec) -> str:
    """One plot as a base64 PNG: each series as points with asymmetric error bars, a dashed margin, zero."""
    import matplotlib.ticker
    from matplotlib.figure import Figure  # not pyplot: no global state, and half its import time

    fig = Figure(figsize=(8, 3))
    ax = fig.subplots()
    for series in spec["series"]:
        ax.errorbar(series["x"], series["y"], yerr=[series["low"], series["high"]], fmt="o", capsize=3,
                    color=series["colour"], label=series["label"])
    if spec["margin"] is not None:
        ax.axhline(spec["margin"], color="#cf222e", linestyle="--", lw=1, label="guardrail margin")
    ax.axhline(0, color="grey", lw=1)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel(spec["xlabel"])
    ax.set_ylabel(spec["ylabel"])
    ax.set_title(spec["title"])
    ax.legend(loc="best", fontsize="small")
    fig.subplots_adjust(right=0.98, bottom=0.17, top=0.9)  # fixed margins: tight_layout takes a third more time
    fig.subplots_adjust(left=_left_margin(ax))  # (after the height is set: the y ticks depend on it)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return base64.b64encode(buffer.getvalue()).decode()


def _left_margin(ax: Any) -> float:
    """Room for the y label and the widest y tick label (about 7 pixels a character at 80 dpi, 640 pixels wide),
    computed from the ticks' text without drawing the figure, as tight_layout would."""
    labels = ax.yaxis.get_major_formatter().format_ticks(ax.get_yticks())
    return min(0.3, (32 + 7 * max((len(label) for label in labels), default=1)) / 640)


HELPER_TIMEOUT_S = 60.0  # from sending the plots to the last image; beyond it the plots are drawn here


class Painter:
    """Draws trend plots, in a helper process (processes.Helper) if `helper`, or else in this one. `send` hands
    the helper every plot of the build at once; `receive` returns the images in the same order, drawn here when
    the helper died, hung past HELPER_TIMEOUT_S or answered nonsense."""

    def __init__(self, helper: bool = True) -> None:
        self._helper = Helper(__name__) if helper else None
        self._sent: list[TrendSpec] = []
        self._deadline = 0.0

    @property
    def helper_pid(self) -> int | None:
        return self._helper.pid if self._helper is not None else None

    def send(self, specs: list[TrendSpec]) -> None:
        self._sent, self._deadline = specs, time.monotonic() + HELPER_TIMEOUT_S
        if self._helper is not None and specs:
            self._helper.send(specs, self._deadline)

    def receive(self) -> list[str]:
        specs, self._sent = self._sent, []
        if self._helper is not None and specs:
            images = self._helper.receive(self._deadline)
            if isinstance(images, list) and len(images) == len(specs) and all(isinstance(i, str) for i in images):
                return images
            self._helper.close()  # not asked again
        return [draw(spec) for spec in specs]

    def close(self) -> None:
        if self._helper is not None:
            self._helper.close()

    def __enter__(self) -> "Painter":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def _serve() -> None:
    """The helper: import matplotlib at once, then answer each line of specs with a line of images."""
    import importlib

    for module in ("matplotlib.ticker", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        importlib.import_module(module)  # what the helper is for: done before the first plot is asked for
    draw({"series": [{"label": "warm-up", "colour": "#0969da", "x": [1], "y": [0.0], "low": [1.0], "high": [1.0]}],
          "margin": None, "xlabel": "x", "ylabel": "y", "title": "warm-up"})  # fonts and renderer loaded, output unused

    for line in sys.stdin:
        sys.stdout.write(json.dumps([draw(spec) for spec in json.loads(line)]) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()
