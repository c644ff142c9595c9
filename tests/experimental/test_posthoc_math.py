"""The mathematics of experimental/posthoc on small closed-form cases: last-layer Laplace
against a brute-force Hessian of a tiny linear softmax model, temperature scaling never
raising the NLL it is fit on, class-conditional Gaussian densities against scipy."""
import numpy as np
import pytest
from scipy import special, stats

from experimental.posthoc import density, laplace
from uncertainty_baselines import metrics as ub_metrics

D, K, N = 2, 3, 20


def tiny_problem(seed=0, zero_weights=False):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(N, D))
    kernel = np.zeros((D, K)) if zero_weights else rng.normal(size=(D, K))
    bias = np.zeros(K) if zero_weights else rng.normal(size=K)
    labels = rng.integers(0, K, N)
    return features, labels, kernel, bias, rng.normal(size=(5, D))


def summed_nll(theta, features, labels):
    w = theta.reshape(D + 1, K)  # Row-major [W; b], as the module's vec(W~).
    logits = features @ w[:D] + w[D]
    return float(np.sum(special.logsumexp(logits, axis=1) - logits[np.arange(len(labels)), labels]))


def direct_logit_covariance(features, labels, kernel, bias, test, scale, tau, diagonal=False):
    """Sigma_f = J P^-1 J^T with P = scale * Hessian + tau I, the Hessian by central second
    differences of the summed NLL and J by differences of the logits: no formula of the module."""
    theta = np.concatenate([kernel, bias[None]]).reshape(-1)
    m, h = theta.size, 1e-4
    hessian = np.zeros((m, m))
    for i in range(m):
        for j in range(m):
            e_i, e_j = np.eye(m)[i] * h, np.eye(m)[j] * h
            hessian[i, j] = (summed_nll(theta + e_i + e_j, features, labels) - summed_nll(theta + e_i - e_j, features, labels)
                             - summed_nll(theta - e_i + e_j, features, labels)
                             + summed_nll(theta - e_i - e_j, features, labels)) / (4 * h * h)
    precision = scale * hessian + tau * np.eye(m)
    covariance = np.diag(1 / np.diag(precision)) if diagonal else np.linalg.inv(precision)

    def logits(t):
        w = t.reshape(D + 1, K)
        return test @ w[:D] + w[D]

    jac = np.stack([(logits(theta + np.eye(m)[i]) - logits(theta - np.eye(m)[i])) / 2 for i in range(m)], axis=2)
    return np.einsum("nki,ij,nlj->nkl", jac, covariance, jac)


@pytest.mark.parametrize("kind", ["full", "diag"])
def test_logit_covariance_matches_a_brute_force_hessian(kind):
    features, labels, kernel, bias, test = tiny_problem()
    la = laplace.LastLayerLaplace(kernel, bias, kind, prior_precision=0.7).fit(features, num_train_examples=3 * N)
    want = direct_logit_covariance(features, labels, kernel, bias, test, scale=3.0, tau=0.7, diagonal=kind == "diag")
    np.testing.assert_allclose(la.logit_covariance(test), want, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(la.logit_variance(test), np.einsum("nkk->nk", want), rtol=1e-5, atol=1e-8)


def test_kfac_is_exact_when_every_example_has_the_same_softmax_curvature():
    """With zero weights every p_n is uniform, so Lambda_n is constant and H = A kron G exactly."""
    features, labels, kernel, bias, test = tiny_problem(1, zero_weights=True)
    la = laplace.LastLayerLaplace(kernel, bias, "kfac", prior_precision=0.3).fit(features)
    want = direct_logit_covariance(features, labels, kernel, bias, test, scale=1.0, tau=0.3)
    np.testing.assert_allclose(la.logit_covariance(test), want, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(la.logit_variance(test), np.einsum("nkk->nk", want), rtol=1e-5, atol=1e-8)
    full = laplace.LastLayerLaplace(kernel, bias, "full", prior_precision=0.3).fit(features)
    np.testing.assert_allclose(la.posterior_precision(), full.posterior_precision(), atol=1e-10)


def test_kfac_is_an_approximation_otherwise_but_a_valid_covariance():
    features, _, kernel, bias, test = tiny_problem(2)
    cov = laplace.LastLayerLaplace(kernel, bias, "kfac", prior_precision=0.3).fit(features).logit_covariance(test)
    np.testing.assert_allclose(cov, np.swapaxes(cov, 1, 2), atol=1e-12)
    assert np.all(np.linalg.eigvalsh(cov) > -1e-12)


def test_predictives():
    features, labels, kernel, bias, test = tiny_problem(3)
    la = laplace.LastLayerLaplace(kernel, bias, "full", prior_precision=0.5).fit(features)
    cov = la.logit_covariance(test)
    mu = la.logits(test)
    # MC predictive against an independent Monte Carlo of N(mu, Sigma_f).
    rng = np.random.default_rng(9)
    samples = np.stack([rng.multivariate_normal(m, c, size=20000) for m, c in zip(mu, cov)], axis=1)
    want = special.softmax(samples, axis=2).mean(axis=0)
    np.testing.assert_allclose(la.predictive(test, "mc", num_samples=20000, seed=1), want, atol=0.01)
    # Probit: the closed form; a huge prior precision gives the MAP softmax.
    np.testing.assert_allclose(la.predictive(test), special.softmax(mu / np.sqrt(1 + np.pi / 8 * np.einsum("nkk->nk", cov)), axis=1))
    la.prior_precision = 1e12
    np.testing.assert_allclose(la.predictive(test), special.softmax(mu, axis=1), atol=1e-9)


def test_prior_precision_selection_takes_the_lowest_held_out_nll():
    features, labels, kernel, bias, test = tiny_problem(4)
    la = laplace.LastLayerLaplace(kernel, bias, "kfac").fit(features)
    held_out, held_labels = np.random.default_rng(5).normal(size=(30, D)), np.arange(30) % K
    tau, nll = la.select_prior_precision(held_out, held_labels, candidates=(0.01, 0.1, 1.0, 10.0))
    assert tau == min(nll, key=nll.get) and la.prior_precision == tau and len(nll) == 4
    la.prior_precision = 0.1
    p = la.predictive(held_out)
    assert nll[0.1] == pytest.approx(-np.mean(np.log(p[np.arange(30), held_labels])))


def test_laplace_bad_input_refused():
    with pytest.raises(ValueError, match="unknown Laplace curvature"):
        laplace.LastLayerLaplace(np.zeros((2, 3)), np.zeros(3), "block")
    with pytest.raises(ValueError, match="call fit"):
        laplace.LastLayerLaplace(np.zeros((2, 3)), np.zeros(3)).predictive(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="kernel"):
        laplace.LastLayerLaplace(np.zeros((2, 3)), np.zeros(2))


def test_temperature_scaling_never_increases_the_nll_it_is_fit_on():
    rng = np.random.default_rng(0)
    for draw in range(200):
        n, k = int(rng.integers(50, 300)), int(rng.integers(2, 12))
        logits = rng.normal(size=(n, k)) * 2
        # Labels drawn from softmax(logits / T_true): over- (T_true > 1) or under-confident logits.
        true_probs = special.softmax(logits / rng.uniform(0.3, 4), axis=1)
        labels = (rng.uniform(size=(n, 1)) > np.cumsum(true_probs, axis=1)).sum(axis=1).clip(0, k - 1)

        def nll(t):
            return float(np.mean(special.logsumexp(logits / t, axis=1) - logits[np.arange(n), labels] / t))

        t = ub_metrics.fit_temperature(logits, labels)
        assert nll(t) <= nll(1.0) + 1e-12, draw
        assert nll(t) <= min(nll(s) for s in np.geomspace(0.05, 20, 60)) + 1e-9, draw


def test_class_conditional_gaussians_match_scipy_and_flag_far_points():
    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0]])
    labels = np.repeat([0, 1], [300, 100])
    features = means[labels] + rng.normal(size=(400, 3)) @ np.diag([1.0, 0.5, 2.0])
    g = density.ClassConditionalGaussians().fit(features, labels, 2)
    queries = rng.normal(size=(7, 3)) * 3
    want = np.log(sum(np.mean(labels == c) * stats.multivariate_normal(
        features[labels == c].mean(0), np.cov(features[labels == c], rowvar=False)).pdf(queries) for c in (0, 1)))
    np.testing.assert_allclose(g.log_density(queries), want, rtol=1e-10)
    far = rng.normal(size=(100, 3)) + 12
    near = means[labels[:100]] + rng.normal(size=(100, 3))
    assert ub_metrics.auroc(np.concatenate([g.ood_score(near), g.ood_score(far)]), np.repeat([0, 1], 100)) > 0.99


def test_degenerate_covariance_gets_jitter_and_missing_classes_are_refused():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(50, 4))
    z[:, 3] = z[:, 0]  # Rank-deficient: singular covariance.
    g = density.ClassConditionalGaussians().fit(z, np.arange(50) % 2, 2)
    assert all(j > 0 for j in g.jitters) and np.all(np.isfinite(g.log_density(z)))
    with pytest.raises(ValueError, match="at least 2 fit examples"):
        density.ClassConditionalGaussians().fit(z, np.zeros(50, int), 2)
