"""Small stages for the harness tests: a linear pipeline whose metric is known exactly."""

import time

import numpy as np
import pandas as pd


def frame(units: int = 200, rows: int = 5, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = units * rows
    return pd.DataFrame({"unit": np.repeat(np.arange(units), rows), "x": rng.normal(10, 2, n),
                         "y": rng.normal(0, 1, n), "label": rng.integers(0, 3, n).astype(str)})


def double(f):
    return f.assign(z=2 * f.x.fillna(0))


def double_v2(f):
    return f.assign(z=2 * f.x.fillna(0) + 0.5)


def fragile(f):
    """Squares x: zero-mean noise of sd s in x raises the mean of z by s^2 (E[(x + e)^2] = x^2 + s^2)."""
    return f.assign(z=f.x ** 2)


def negative(f):
    return f.assign(z=-1.0)


def sleepy(f):
    time.sleep(0.02)
    return f


def passthrough(f):
    return f


def mean_z(output):
    return output.groupby("unit").z.mean()


def allocates_numpy(f):
    """Holds a 160 MiB NumPy array for the call (NumPy reports its buffers to tracemalloc)."""
    block = np.ones(20 * 2**20)
    return f.assign(z=float(block[-1]))


def allocates_outside_python(f):
    """Touches a 160 MiB anonymous mmap: memory no Python allocator hands out, so tracemalloc cannot see it."""
    import mmap

    block = mmap.mmap(-1, 160 * 2**20)
    np.frombuffer(block, dtype=np.uint8)[:] = 1
    del block
    return f.assign(z=1.0)
