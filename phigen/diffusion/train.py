"""The training loop now lives in :mod:`phigen.nn.train` (shared by every network model); this module
re-exports it so that ``phigen.diffusion.train`` keeps working."""

from ..nn.train import (CHECKPOINT_KIND, TrainConfig, TrainResult, TrainState, batch_indices, data_parallel_mesh,
                        init_train_state, load_checkpoint, make_optimizer, run_train_chunk, save_checkpoint, train)

__all__ = ["TrainConfig", "TrainState", "TrainResult", "make_optimizer", "init_train_state", "batch_indices",
           "train", "save_checkpoint", "load_checkpoint", "CHECKPOINT_KIND", "run_train_chunk", "data_parallel_mesh"]
