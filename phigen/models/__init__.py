"""phigen.models: the model protocol (fit / sample / n_params / save / load), registry and file format."""

from ._base import (MODELS, ModelFile, get_model_class, load_model, model_kind, read_model_file, register_model,
                    write_model_file)
from .api import fit, load_training_fields, sample
from .gaussian import GaussianSpectrumModel

__all__ = ["MODELS", "ModelFile", "GaussianSpectrumModel", "fit", "get_model_class", "load_model",
           "load_training_fields", "model_kind", "read_model_file", "register_model", "sample",
           "write_model_file"]
