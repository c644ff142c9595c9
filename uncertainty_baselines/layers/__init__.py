"""Uncertainty layers: test-time (MC) dropout, mean-field variational Dense, Flipout Dense
and Conv2D (mean-field Gaussian kernels, decorrelated per-example perturbations; their
model's KL by flipout_kl), BatchEnsemble Dense and Conv2D (shared kernels, rank-1 fast
weights per member), rank-1 Bayesian Dense and Conv2D (BatchEnsemble-like factors with
Gaussian or Cauchy posteriors; their model's KL by rank1_kl), a heteroscedastic Monte-Carlo
softmax head, SNGP's spectrally normalised Dense and Conv2D (bounded operator norm) and
random-feature Gaussian-process output layer (with mean_field_logits; as a logits layer,
MeanFieldGaussianProcess; reset_covariances at a model's epoch start), and a Dense layer
stacked over ensemble members for vectorised training."""
from uncertainty_baselines.layers.batchensemble import (Conv2DBatchEnsemble, DenseBatchEnsemble,
                                                      RandomSign, fast_weights,
                                                      random_sign_init_error, sign_initializer)
from uncertainty_baselines.layers.dropout import MCDropout
from uncertainty_baselines.layers.flipout import Conv2DFlipout, DenseFlipout, flipout_kl
from uncertainty_baselines.layers.gaussian_process import (MeanFieldGaussianProcess,
                                                         OrthogonalRandomFeatures,
                                                         RandomFeatureGaussianProcess,
                                                         mean_field_logits, reset_covariances)
from uncertainty_baselines.layers.heteroscedastic import HeteroscedasticSoftmax
from uncertainty_baselines.layers.rank1 import Conv2DRank1, DenseRank1, rank1_kl
from uncertainty_baselines.layers.spectral_norm import SpectralNormConv2D, SpectralNormDense
from uncertainty_baselines.layers.stacked_dense import StackedDense
from uncertainty_baselines.layers.variational import DenseVariational

__all__ = ["Conv2DBatchEnsemble", "Conv2DFlipout", "Conv2DRank1", "DenseBatchEnsemble",
           "DenseFlipout", "DenseRank1", "DenseVariational", "HeteroscedasticSoftmax",
           "MCDropout", "MeanFieldGaussianProcess", "OrthogonalRandomFeatures",
           "RandomFeatureGaussianProcess", "RandomSign", "SpectralNormConv2D", "SpectralNormDense",
           "StackedDense", "fast_weights", "flipout_kl", "mean_field_logits",
           "random_sign_init_error", "rank1_kl", "reset_covariances", "sign_initializer"]
