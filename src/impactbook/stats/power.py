"""Power and minimum detectable effect for a two-sided two-sample test (normal approximation).

Formulas as in Chow, Shao, Wang (2008), Sample Size Calculations in Clinical Research, 2nd ed.,
section 3.2: power = Phi(|d| / se - z_{1-alpha/2}) + Phi(-|d| / se - z_{1-alpha/2}).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from .distributions import NORMAL



@dataclass(frozen=True)
class Power:
    method: str
    alpha: float
    relative_effect: float
    absolute_effect: float
    achieved_power: float
    target_power: float
    units_per_arm_needed: int
    units_per_arm_observed: int
    minimum_detectable_relative_effect: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def power_for(absolute_effect: float, standard_error: float, alpha: float) -> float:
    z = NORMAL.ppf(1 - alpha / 2)
    shift = abs(absolute_effect) / standard_error
    return float(NORMAL.cdf(shift - z) + NORMAL.cdf(-shift - z))


def achieved_power(control_mean: float, standard_error: float, units_per_arm: float, relative_effect: float,
                   alpha: float, target_power: float = 0.8) -> Power:
    """Power to detect the preregistered relative effect with the standard error observed (after any
    variance reduction); the units per arm a balanced design needs for `target_power`, scaling the
    standard error by sqrt(n_observed / n); and the relative effect detectable at that power."""
    absolute = relative_effect * control_mean
    z_alpha, z_beta = NORMAL.ppf(1 - alpha / 2), NORMAL.ppf(target_power)
    needed = math.ceil(units_per_arm * (standard_error * (z_alpha + z_beta) / absolute) ** 2) if absolute else 0
    mde = (z_alpha + z_beta) * standard_error / abs(control_mean) if control_mean else math.inf
    return Power("two-sided normal approximation", alpha, relative_effect, absolute,
                 power_for(absolute, standard_error, alpha), target_power, needed, int(units_per_arm), mde)
