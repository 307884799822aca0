"""Registers the RG model kinds with :mod:`phigen.models`: ``wcrg`` (:mod:`phigen.rg.wcrg`),
``wcrg-conditional`` (:mod:`phigen.rg.conditional`) and ``wsgm`` (:mod:`phigen.rg.score`)."""

from .conditional import ConditionalWCRGModel
from .score import WSGMModel
from .wcrg import WCRGModel

__all__ = ["WCRGModel", "ConditionalWCRGModel", "WSGMModel"]
