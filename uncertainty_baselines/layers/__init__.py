"""Uncertainty layers: test-time (MC) dropout, mean-field variational Dense, and a Dense
layer stacked over ensemble members for vectorised training."""
from uncertainty_baselines.layers.batchensemble import (Conv2DBatchEnsemble, DenseBatchEnsemble,
                                                      RandomSign, random_sign_initializer)
from uncertainty_baselines.layers.dropout import MCDropout
from uncertainty_baselines.layers.stacked_dense import StackedDense
from uncertainty_baselines.layers.variational import DenseVariational

__all__ = ["Conv2DBatchEnsemble", "DenseBatchEnsemble", "DenseVariational", "MCDropout",
           "RandomSign", "StackedDense", "random_sign_initializer"]
