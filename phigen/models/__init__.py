"""phigen.models: the model protocol (fit / sample / n_params / save / load), registry and file format."""

from ._base import (MODELS, GenerativeModel, ModelFile, get_model_class, load_model, model_kind, model_options, read_model_file,
                    register_model, available_models,
                    sampling_tag, tag_sampling_key, write_model_file)
from ._provenance import check_training_disjoint, field_digests, fields_sha256
from .api import fit, load_training_fields, sample
from .gaussian import GaussianSpectrumModel

__all__ = ["MODELS", "GenerativeModel", "ModelFile", "GaussianSpectrumModel", "check_training_disjoint", "field_digests",
           "fields_sha256", "fit", "get_model_class", "load_model", "load_training_fields", "model_kind", "model_options", "available_models",
           "read_model_file", "register_model", "sample", "sampling_tag", "tag_sampling_key", "write_model_file"]
