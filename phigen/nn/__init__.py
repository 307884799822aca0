"""phigen.nn: the network building blocks every network model shares (docs/architecture.md).

- :mod:`~phigen.nn.conv`: periodic convolutions (:func:`periodic_conv`, the fast :func:`apply_conv`,
  :func:`zero_conv`), GroupNorm, periodic pooling and up-sampling;
- :mod:`~phigen.nn.embedding`: sinusoidal features of a scalar condition;
- :mod:`~phigen.nn.init`: one-call initialisation of a whole network, parameter counts;
- :mod:`~phigen.nn.data`: checked training fields and their standardisation;
- :mod:`~phigen.nn.train`: Adam + EMA + clipping, deterministic batches, checkpoints and exact
  resume, data-free losses and auxiliary loss curves.

The diffusion UNet, the WSGM conditional network, the flows, the VAE and the GAN are built from
these; a new network model is one module plus a registry line.
"""

from .conv import apply_conv, group_norm, periodic_conv, pool2, upsample2, zero_conv
from .data import training_fields
from .embedding import sinusoidal_features
from .init import count_params, init_layers, is_layer
from .train import (CHECKPOINT_KIND, TrainConfig, TrainResult, TrainState, batch_indices, init_train_state,
                    load_checkpoint, make_optimizer, run_train_chunk, save_checkpoint, train)

__all__ = ["apply_conv", "group_norm", "periodic_conv", "pool2", "upsample2", "zero_conv", "sinusoidal_features",
           "count_params", "init_layers", "is_layer", "CHECKPOINT_KIND", "TrainConfig", "TrainResult", "TrainState",
           "batch_indices", "init_train_state", "load_checkpoint", "make_optimizer", "run_train_chunk",
           "save_checkpoint", "train", "training_fields"]
