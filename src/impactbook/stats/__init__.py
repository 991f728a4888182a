"""Pure statistics for templates: sufficient statistics in, typed results out; no I/O, no pandas."""

from .effects import Effect, NotEstimable, compare, cuped_arms, cuped_difference, proportion_difference, ratio_difference, welch_difference
from .multiple import adjust_p_values, dunnett_adjust
from .power import Power, achieved_power
from .segments import Heterogeneity, cochran_q
from .sequential import AnytimeValid, crossing_probability, group_sequential_bounds, msprt, next_bound, spending
from .srm import SampleRatioMismatch, srm_test
from .statistics import ArmEstimate, RatioStatistic, RegressionStatistic, SampleMean
from .stratified import StratifiedEffect, Stratum, stratified_effect
from .verdicts import NonInferiority, non_inferiority, non_inferiority_verdict, superiority_verdict

__all__ = ["AnytimeValid", "crossing_probability", "group_sequential_bounds", "msprt", "next_bound", "spending",
           "StratifiedEffect", "Stratum", "stratified_effect", "ArmEstimate", "Effect", "NotEstimable", "Heterogeneity", "NonInferiority", "Power", "RatioStatistic",
           "RegressionStatistic", "SampleMean", "SampleRatioMismatch", "achieved_power", "adjust_p_values", "dunnett_adjust",
           "cochran_q", "compare", "cuped_arms", "cuped_difference", "non_inferiority", "non_inferiority_verdict",
           "proportion_difference", "ratio_difference", "srm_test", "superiority_verdict", "welch_difference"]
