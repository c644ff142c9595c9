"""Search spaces over named flags: grids, random and quasi-random (Halton) draws.

    grid(dataset=["uci_yacht", "uci_boston_housing"], learning_rate=[1e-3, 1e-2])
    halton(8, base_learning_rate=LogUniform(0.03, 0.3), l2=LogUniform(1e-5, 1e-3), seed=0)
    product(grid(dataset=[...]), random_search(4, dropout_rate=Uniform(0.0, 0.3)))

A space is a finite, ordered list of points ({flag: value}); the same definition always
gives the same points (random draws are seeded), so a sweep resumes onto the same runs.
Drawn floats keep 4 significant digits (readable flag values).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np


class SweepError(ValueError):
    """A sweep that cannot run as defined; the message names the problem."""


@dataclasses.dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly from [low, high]."""
    low: float
    high: float

    def at(self, u: float) -> float:
        return _round(self.low + u * (self.high - self.low))

    def check(self, name: str) -> None:
        if not self.low < self.high:
            raise SweepError(f"{name}: Uniform needs low < high, got {self.low}, {self.high}")


@dataclasses.dataclass(frozen=True)
class LogUniform:
    """A float whose logarithm is uniform on [log low, log high] (learning rates, L2)."""
    low: float
    high: float

    def at(self, u: float) -> float:
        return _round(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))

    def check(self, name: str) -> None:
        if not 0 < self.low < self.high:
            raise SweepError(f"{name}: LogUniform needs 0 < low < high, got {self.low}, {self.high}")


@dataclasses.dataclass(frozen=True)
class IntUniform:
    """An integer drawn uniformly from low..high (both included)."""
    low: int
    high: int

    def at(self, u: float) -> int:
        return int(min(self.high, self.low + math.floor(u * (self.high - self.low + 1))))

    def check(self, name: str) -> None:
        if not self.low <= self.high:
            raise SweepError(f"{name}: IntUniform needs low <= high, got {self.low}, {self.high}")


@dataclasses.dataclass(frozen=True)
class Choice:
    """One of `values`, each equally likely."""
    values: tuple

    def __init__(self, values: Iterable[Any]):
        object.__setattr__(self, "values", tuple(values))

    def at(self, u: float) -> Any:
        return self.values[min(len(self.values) - 1, int(u * len(self.values)))]

    def check(self, name: str) -> None:
        if not self.values:
            raise SweepError(f"{name}: Choice has no values")


Distribution = Uniform | LogUniform | IntUniform | Choice


@dataclasses.dataclass(frozen=True)
class Space:
    """A finite ordered list of points over named flags (build with grid, random_search,
    halton, product or chain)."""
    points: tuple[dict[str, Any], ...]
    description: str

    @property
    def names(self) -> list[str]:
        """Every flag name any point sets, in first-seen order."""
        return list(dict.fromkeys(k for p in self.points for k in p))

    def __len__(self) -> int:
        return len(self.points)


def grid(**axes: Sequence[Any]) -> Space:
    """Every combination of the axes' values (the last axis varies fastest)."""
    if not axes:
        raise SweepError("grid() needs at least one flag with values")
    for name, values in axes.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise SweepError(f"grid axis {name!r} must be a list of values, got {values!r}")
        if not list(values):
            raise SweepError(f"grid axis {name!r} has no values: an empty grid makes no runs")
    names = list(axes)
    points = tuple(dict(zip(names, combo)) for combo in itertools.product(*(list(v) for v in axes.values())))
    return Space(points, "grid over " + ", ".join(f"{n} ({len(list(axes[n]))})" for n in names))


def random_search(num: int, *, seed: int = 0, **distributions: Distribution) -> Space:
    """`num` independent draws (NumPy's PCG64 seeded with `seed`)."""
    _check_draws(num, distributions)
    u = np.random.default_rng(seed).random((num, len(distributions)))
    return Space(_points(u, distributions), f"{num} random draws (seed {seed}) over {', '.join(distributions)}")


def halton(num: int, *, seed: int = 0, **distributions: Distribution) -> Space:
    """`num` points of a scrambled Halton sequence (quasi-random: evenly spread over the
    space, better coverage than random draws for few points; scipy.stats.qmc)."""
    _check_draws(num, distributions)
    from scipy.stats import qmc
    u = qmc.Halton(d=len(distributions), scramble=True, seed=seed).random(num)
    return Space(_points(u, distributions), f"{num} Halton points (seed {seed}) over {', '.join(distributions)}")


def product(*spaces: Space) -> Space:
    """Every combination of a point of each space (flag names must not repeat)."""
    if not spaces:
        raise SweepError("product() needs at least one space")
    _disjoint(spaces)
    combos = itertools.product(*(s.points for s in spaces))
    points = tuple({k: v for p in combo for k, v in p.items()} for combo in combos)
    return Space(points, " x ".join(f"({s.description})" for s in spaces))


def chain(*spaces: Space) -> Space:
    """The points of each space, one after another."""
    if not spaces:
        raise SweepError("chain() needs at least one space")
    return Space(tuple(p for s in spaces for p in s.points), " + ".join(f"({s.description})" for s in spaces))


def _check_draws(num: int, distributions: Mapping[str, Distribution]) -> None:
    if not isinstance(num, int) or num < 1:
        raise SweepError(f"the number of draws must be a positive integer, got {num!r}")
    if not distributions:
        raise SweepError("name at least one flag and its distribution")
    for name, dist in distributions.items():
        if not isinstance(dist, (Uniform, LogUniform, IntUniform, Choice)):
            raise SweepError(f"{name}: {dist!r} is not a distribution (Uniform, LogUniform, IntUniform, Choice); "
                             "fixed values go in the sweep's `fixed`, lists of values in grid()")
        dist.check(name)


def _points(u: np.ndarray, distributions: Mapping[str, Distribution]) -> tuple[dict[str, Any], ...]:
    return tuple({name: dist.at(float(x)) for (name, dist), x in zip(distributions.items(), row)} for row in u)


def _disjoint(spaces: Sequence[Space]) -> None:
    seen: dict[str, int] = {}
    for i, space in enumerate(spaces):
        for name in space.names:
            if name in seen:
                raise SweepError(f"flag {name!r} is swept by two spaces of one product ({seen[name] + 1} and {i + 1})")
            seen[name] = i


def _round(x: float) -> float:
    return float(f"{x:.4g}")
