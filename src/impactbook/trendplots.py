"""A plan page's trend plots: drawn with matplotlib from plain data, in a helper process when one can run.

Importing matplotlib takes ~0.8 s and three plots ~0.4 s: most of an incremental site build after new runs.
`Painter` starts `python -m impactbook.trendplots` when the build begins; the helper imports matplotlib while
the build checks and renders runs, then draws the plots it is sent while the build writes other pages. The
helper runs the very `draw` below, so its images are byte for byte those drawn in the build's own process,
which is where they are drawn when the helper cannot start or fails.
"""

from __future__ import annotations

import base64
import io
import json
import os
import select
import subprocess
import sys
import time
from typing import Any

from .processes import die_with_parent

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
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return base64.b64encode(buffer.getvalue()).decode()


HELPER_TIMEOUT_S = 60.0  # from sending the plots to the last image; beyond it the plots are drawn here


class Painter:
    """Draws trend plots, in a helper process if `helper` (and more than one core) or else in this one. `send`
    hands the helper every plot of the build at once; `receive` returns the images in the same order. A helper
    that dies, hangs past HELPER_TIMEOUT_S or answers nonsense is killed and the plots are drawn here. It runs
    with -P (no module of the current folder shadows matplotlib's) and dies with this process."""

    def __init__(self, helper: bool = True) -> None:
        self._process: subprocess.Popen | None = None
        self._sent: list[TrendSpec] = []
        self._deadline = 0.0
        if helper and (os.cpu_count() or 1) > 1:
            parent = os.getpid()
            try:
                self._process = subprocess.Popen([sys.executable, "-P", "-m", __name__], stdin=subprocess.PIPE,
                                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                                 preexec_fn=lambda: die_with_parent(parent))
            except OSError:  # no process to spare: the plots are drawn here
                self._process = None

    @property
    def helper_pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def send(self, specs: list[TrendSpec]) -> None:
        self._sent, self._deadline = specs, time.monotonic() + HELPER_TIMEOUT_S
        if self._process is not None and specs:
            if not _write_all(self._process.stdin, (json.dumps(specs) + "\n").encode(), self._deadline):
                self.close()

    def receive(self) -> list[str]:
        specs, self._sent = self._sent, []
        if self._process is not None and specs:
            try:
                images = json.loads(_read_line(self._process.stdout, self._deadline))
                if isinstance(images, list) and len(images) == len(specs):
                    return images
            except ValueError:  # none in time (b""), or not JSON
                pass
            self.close()  # it died, hung or answered nonsense: not asked again
        return [draw(spec) for spec in specs]

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.kill()  # it holds nothing: its only output is what it answered
            process.wait()
            for pipe in (process.stdin, process.stdout):
                try:
                    pipe.close()
                except OSError:  # (a broken pipe to a killed helper)
                    pass

    def __enter__(self) -> "Painter":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def _write_all(pipe: Any, data: bytes, deadline: float) -> bool:
    """Everything written before `deadline` (the helper reads once its imports are done)?"""
    fd = pipe.fileno()
    os.set_blocking(fd, False)
    view = memoryview(data)
    while view:
        if not select.select([], [fd], [], max(0.0, deadline - time.monotonic()))[1]:
            return False
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            continue
        except OSError:  # (it died: a broken pipe)
            return False
    return True


def _read_line(pipe: Any, deadline: float) -> bytes:
    """One line, or b"" at end of file or past `deadline`."""
    fd, chunks = pipe.fileno(), []
    while True:
        if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            return b""
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b""
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            return b"".join(chunks)


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
