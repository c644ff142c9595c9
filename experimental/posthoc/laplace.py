"""Last-layer Laplace approximation of a softmax classifier (NumPy).

The network's features phi [N, D] stay fixed; its output layer f = W^T phi + b becomes
Gaussian around the trained (MAP) weights. With phi~ = [phi, 1] and theta = vec(W~) of
W~ = [W; b] ([D + 1, K], row-major), the Hessian of the summed cross-entropy is exactly
its generalised Gauss-Newton, H = sum_n (phi~_n phi~_n^T) kron Lambda_n with
Lambda_n = diag(p_n) - p_n p_n^T, because f is linear in theta. The posterior precision is
P = s H + tau I: `s` scales the curvature of the `n` fit examples to the N the network was
trained on (s = N / n), tau is the prior precision. Curvatures:

- `full`: H itself ((D + 1) K square; for small heads and tests);
- `kfac`: H ~ A kron G with A = sum_n phi~ phi~^T and G = mean_n Lambda_n (exact when every
  Lambda_n is the same), inverted through the eigenvectors of A and G;
- `diag`: the diagonal of H (independent weights: the logits' covariance is diagonal).

The logits' covariance is Sigma_f = J P^-1 J^T with J = phi~^T kron I_K. Predictive:
`probit` softmax(mu_k / sqrt(1 + pi/8 Sigma_f[k, k])) (the multi-class probit
approximation), or `mc` the mean softmax of samples f ~ N(mu, Sigma_f).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import special

KINDS = ("diag", "kfac", "full")
PREDICTIVES = ("probit", "mc")
# Prior precisions tried by `select_prior_precision` (4 per decade).
PRIOR_PRECISIONS = tuple(float(t) for t in np.logspace(-4, 8, 49))


def with_bias(features: np.ndarray) -> np.ndarray:
    """[phi, 1]: float64 features [N, D + 1]."""
    features = np.asarray(features, np.float64)
    return np.concatenate([features, np.ones((len(features), 1))], axis=1)


class LastLayerLaplace:
    """Laplace posterior over the output layer (`kernel` [D, K], `bias` [K]); see the module doc.

    `fit(features, num_train_examples)` computes the curvature at the trained weights;
    `prior_precision` (tau) is set directly or by `select_prior_precision` on held-out data.
    """

    def __init__(self, kernel: np.ndarray, bias: np.ndarray, kind: str = "kfac", prior_precision: float = 1.0):
        if kind not in KINDS:
            raise ValueError(f"unknown Laplace curvature {kind!r}; valid: {KINDS}")
        self.kernel = np.asarray(kernel, np.float64)
        self.bias = np.asarray(bias, np.float64)
        if self.kernel.ndim != 2 or self.bias.shape != (self.kernel.shape[1],):
            raise ValueError(f"kernel [D, K] and bias [K] expected, got {self.kernel.shape} and {self.bias.shape}")
        self.kind = kind
        self.prior_precision = float(prior_precision)
        self.scale = 1.0
        self._curvature: dict[str, np.ndarray] | None = None

    @property
    def num_classes(self) -> int:
        return self.kernel.shape[1]

    def logits(self, features: np.ndarray) -> np.ndarray:
        """The MAP logits phi W + b [N, K]."""
        return np.asarray(features, np.float64) @ self.kernel + self.bias

    def fit(self, features: np.ndarray, num_train_examples: int | None = None) -> LastLayerLaplace:
        """Curvature of the summed cross-entropy over `features` [n, D] at the trained
        weights, scaled by `num_train_examples` / n (default 1)."""
        phi = with_bias(features)
        n, k = len(phi), self.num_classes
        if n == 0:
            raise ValueError("the Laplace fit needs at least one example")
        p = special.softmax(self.logits(features), axis=1)
        self.scale = (num_train_examples or n) / n
        if self.kind == "diag":  # H[(d, k)] = sum_n phi~_nd^2 p_nk (1 - p_nk)
            self._curvature = {"h": (phi ** 2).T @ (p * (1 - p))}
        elif self.kind == "kfac":
            a = phi.T @ phi
            g = (np.diag(p.sum(axis=0)) - p.T @ p) / n
            a_values, a_vectors = np.linalg.eigh(a)
            g_values, g_vectors = np.linalg.eigh(g)
            self._curvature = {"a_values": np.maximum(a_values, 0), "a_vectors": a_vectors,
                               "g_values": np.maximum(g_values, 0), "g_vectors": g_vectors}
        else:
            d1 = phi.shape[1]
            lam = np.einsum("nk,kl->nkl", p, np.eye(k)) - p[:, :, None] * p[:, None, :]
            h = np.einsum("nd,ne,nkl->dkel", phi, phi, lam).reshape(d1 * k, d1 * k)
            self._curvature = {"h": h}
        return self

    def _check_fitted(self) -> dict[str, np.ndarray]:
        if self._curvature is None:
            raise ValueError("call fit(features) before predicting")
        if not self.prior_precision > 0:
            raise ValueError(f"the prior precision must be > 0, got {self.prior_precision}")
        return self._curvature

    def posterior_precision(self) -> np.ndarray:
        """P = s H + tau I over vec(W~) (row-major [D + 1, K]); `full` and `kfac` as a matrix,
        `diag` as its diagonal [(D + 1) K]."""
        c, tau = self._check_fitted(), self.prior_precision
        if self.kind == "diag":
            return self.scale * c["h"].reshape(-1) + tau
        if self.kind == "kfac":
            a = (c["a_vectors"] * c["a_values"]) @ c["a_vectors"].T
            g = (c["g_vectors"] * c["g_values"]) @ c["g_vectors"].T
            return self.scale * np.kron(a, g) + tau * np.eye(a.shape[0] * g.shape[0])
        return self.scale * c["h"] + tau * np.eye(c["h"].shape[0])

    def logit_variance(self, features: np.ndarray) -> np.ndarray:
        """The diagonal of Sigma_f, [N, K]."""
        c, tau, phi = self._check_fitted(), self.prior_precision, with_bias(features)
        if self.kind == "diag":
            return (phi ** 2) @ (1.0 / (self.scale * c["h"] + tau))
        if self.kind == "kfac":
            s = self._kfac_weights(phi)  # [N, J]
            return s @ (c["g_vectors"] ** 2).T
        return np.einsum("nkk->nk", self.logit_covariance(features))

    def _kfac_weights(self, phi: np.ndarray) -> np.ndarray:
        """S[n, j] = sum_i (phi~_n . u_i)^2 / (s a_i g_j + tau)."""
        c = self._curvature
        projected = (phi @ c["a_vectors"]) ** 2
        return projected @ (1.0 / (self.scale * np.outer(c["a_values"], c["g_values"]) + self.prior_precision))

    def logit_covariance(self, features: np.ndarray) -> np.ndarray:
        """Sigma_f [N, K, K] (diagonal for `diag`)."""
        c, phi = self._check_fitted(), with_bias(features)
        if self.kind == "diag":
            return np.einsum("nk,kl->nkl", self.logit_variance(features), np.eye(self.num_classes))
        if self.kind == "kfac":
            v = c["g_vectors"]
            return np.einsum("nj,kj,lj->nkl", self._kfac_weights(phi), v, v)
        d1, k = phi.shape[1], self.num_classes
        cov = np.linalg.inv(self.posterior_precision()).reshape(d1, k, d1, k)
        return np.einsum("nd,dkel,ne->nkl", phi, cov, phi)

    def predictive(self, features: np.ndarray, method: str = "probit", num_samples: int = 100,
                   seed: int = 0, batch_size: int = 4096) -> np.ndarray:
        """Predictive class probabilities [N, K] (`probit` or `mc`, see the module doc)."""
        if method not in PREDICTIVES:
            raise ValueError(f"unknown Laplace predictive {method!r}; valid: {PREDICTIVES}")
        features = np.asarray(features)
        out = []
        rng = np.random.default_rng(seed)
        for start in range(0, len(features), batch_size):
            chunk = features[start:start + batch_size]
            mu = self.logits(chunk)
            if method == "probit":
                out.append(special.softmax(mu / np.sqrt(1 + math.pi / 8 * self.logit_variance(chunk)), axis=1))
                continue
            eps = rng.standard_normal((num_samples, *mu.shape))
            if self.kind == "diag":
                samples = mu + np.sqrt(self.logit_variance(chunk)) * eps
            else:
                cov = self.logit_covariance(chunk)
                chol = np.linalg.cholesky(cov + 1e-10 * np.eye(self.num_classes))
                samples = mu + np.einsum("nkl,snl->snk", chol, eps)
            out.append(special.softmax(samples, axis=2).mean(axis=0))
        return np.concatenate(out) if out else np.zeros((0, self.num_classes))

    def select_prior_precision(self, features: np.ndarray, labels: np.ndarray,
                               candidates: Sequence[float] = PRIOR_PRECISIONS, method: str = "probit",
                               num_samples: int = 100, seed: int = 0) -> tuple[float, dict[float, float]]:
        """Set the prior precision to the candidate with the lowest mean NLL of the predictive
        on held-out `features`, `labels`; returns it and the NLL of every candidate."""
        labels = np.asarray(labels)
        nll = {}
        for tau in candidates:
            self.prior_precision = float(tau)
            p = self.predictive(features, method, num_samples, seed)
            nll[float(tau)] = float(-np.mean(np.log(np.maximum(p[np.arange(len(labels)), labels], 1e-300))))
        self.prior_precision = min(nll, key=nll.get)
        return self.prior_precision, nll
