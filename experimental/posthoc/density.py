"""Feature-density OOD scores: class-conditional Gaussians on a network's penultimate
features (Gaussian discriminant analysis, as Deep Deterministic Uncertainty, Mukhoti et
al. 2023). NumPy.

Each class c gets the mean and covariance of its fit features; the density of a feature
vector z is the mixture p(z) = sum_c pi_c N(z; mu_c, Sigma_c) with the classes' fit
frequencies pi_c (DDU sums the classes' densities unweighted: the same ranking for
balanced classes). The OOD score is -log p(z) (higher = more likely OOD). As in DDU, a
covariance that is not positive definite gets the smallest jitter from 0, 1e-20, 1e-19,
..., 1 on its diagonal that makes it so.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import linalg, special

JITTERS = (0.0, *(10.0 ** e for e in range(-20, 1)))


class ClassConditionalGaussians:
    """`fit(features, labels, num_classes)`, then `log_density(features)` [N] and
    `ood_score(features)` = -log_density."""

    def __init__(self) -> None:
        self.means: np.ndarray | None = None
        self.cholesky: list[np.ndarray] = []
        self.log_priors: np.ndarray | None = None
        self.jitters: list[float] = []

    def fit(self, features: np.ndarray, labels: np.ndarray, num_classes: int) -> ClassConditionalGaussians:
        z = np.asarray(features, np.float64)
        y = np.asarray(labels)
        counts = np.bincount(y, minlength=num_classes)
        if len(counts) > num_classes or np.any(counts < 2):
            raise ValueError(f"every class of {num_classes} needs at least 2 fit examples; counts {counts.tolist()}")
        self.means = np.stack([z[y == c].mean(axis=0) for c in range(num_classes)])
        self.log_priors = np.log(counts / counts.sum())
        self.cholesky, self.jitters = [], []
        for c in range(num_classes):
            cov = np.cov(z[y == c], rowvar=False).reshape(z.shape[1], z.shape[1])
            for jitter in JITTERS:
                try:
                    self.cholesky.append(np.linalg.cholesky(cov + jitter * np.eye(len(cov))))
                    self.jitters.append(jitter)
                    break
                except np.linalg.LinAlgError:
                    continue
            else:
                raise ValueError(f"the covariance of class {c} is not positive definite even with jitter 1")
        return self

    def class_log_likelihoods(self, features: np.ndarray) -> np.ndarray:
        """log N(z; mu_c, Sigma_c) [N, C]."""
        if self.means is None:
            raise ValueError("call fit(features, labels, num_classes) first")
        z = np.asarray(features, np.float64)
        d = z.shape[1]
        out = np.empty((len(z), len(self.means)))
        for c, (mu, chol) in enumerate(zip(self.means, self.cholesky)):
            white = linalg.solve_triangular(chol, (z - mu).T, lower=True)  # [D, N]
            log_det = 2 * np.log(np.diag(chol)).sum()
            out[:, c] = -0.5 * (np.einsum("dn,dn->n", white, white) + log_det + d * math.log(2 * math.pi))
        return out

    def log_density(self, features: np.ndarray) -> np.ndarray:
        """log p(z) of the class mixture, [N]."""
        return special.logsumexp(self.class_log_likelihoods(features) + self.log_priors, axis=1)

    def ood_score(self, features: np.ndarray) -> np.ndarray:
        """-log p(z): higher = more likely out-of-distribution."""
        return -self.log_density(features)
