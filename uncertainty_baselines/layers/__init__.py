"""Uncertainty layers: test-time (MC) dropout, mean-field variational Dense, Flipout Dense
and Conv2D (mean-field Gaussian kernels, decorrelated per-example perturbations; their
model's KL by flipout_kl), BatchEnsemble Dense and Conv2D (shared kernels, rank-1 fast
weights per member), and a Dense layer stacked over ensemble members for vectorised
training."""
from uncertainty_baselines.layers.batchensemble import (Conv2DBatchEnsemble, DenseBatchEnsemble,
                                                      RandomSign, fast_weights,
                                                      random_sign_initializer)
from uncertainty_baselines.layers.dropout import MCDropout
from uncertainty_baselines.layers.flipout import Conv2DFlipout, DenseFlipout, flipout_kl
from uncertainty_baselines.layers.stacked_dense import StackedDense
from uncertainty_baselines.layers.variational import DenseVariational

__all__ = ["Conv2DBatchEnsemble", "Conv2DFlipout", "DenseBatchEnsemble", "DenseFlipout",
           "DenseVariational", "MCDropout", "RandomSign", "StackedDense", "fast_weights",
           "flipout_kl", "random_sign_initializer"]
