"""Sample sizes for A/B tests from observed variance (two-sided, two-sample)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from scipy.stats import norm


@dataclass(frozen=True)
class ExperimentPlan:
    """A power-calculated experiment for one suggestion."""

    primary_metric: str
    guardrails: tuple[str, ...]
    baseline_mean: float
    baseline_sd: float
    mde_relative: float
    alpha: float
    power: float
    users_per_arm: int
    eligible_users: int
    weekly_active_users: int
    duration_weeks: int

    def as_dict(self) -> dict[str, object]:
        """Plain JSON of the plan."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def users_per_arm(mean: float, sd: float, mde_relative: float, alpha: float = 0.05,
                  power: float = 0.8) -> int:
    """Users per arm to detect a relative change ``mde_relative`` of a mean (Welch/normal)."""
    delta = abs(mean) * mde_relative
    if delta <= 0 or sd <= 0:
        return 0
    z = norm.ppf(1 - alpha / 2) + norm.ppf(power)
    return math.ceil(2 * (z * sd / delta) ** 2)


def plan_experiment(metric: str, guardrails: tuple[str, ...], mean: float, sd: float,
                    eligible_users: int, weekly_active_users: int, *, mde_relative: float = 0.03,
                    alpha: float = 0.05, power: float = 0.8, arms: int = 2) -> ExperimentPlan:
    """Size an experiment on a segment: users per arm and weeks to enrol them.

    Duration is at least two weeks, so that weekly cycles do not bias the read-out.
    """
    n = users_per_arm(mean, sd, mde_relative, alpha, power)
    weekly = max(weekly_active_users, 1)
    weeks = max(2, math.ceil(n * arms / weekly)) if n else 2
    return ExperimentPlan(metric, guardrails, mean, sd, mde_relative, alpha, power, n,
                          eligible_users, weekly_active_users, weeks)
