"""Pure statistics for templates: sufficient statistics in, typed results out; no I/O."""

from .basic import (Effect, SampleMean, non_inferiority_verdict, proportion_difference, srm_test,
                    superiority_verdict, welch_difference)

__all__ = ["Effect", "SampleMean", "non_inferiority_verdict", "proportion_difference", "srm_test",
           "superiority_verdict", "welch_difference"]
