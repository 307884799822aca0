"""Registers the RG model kinds with :mod:`phigen.models`: ``wcrg`` (:mod:`phigen.rg.wcrg`) and
``wsgm`` (:mod:`phigen.rg.score`)."""

from .score import WSGMModel
from .wcrg import WCRGModel

__all__ = ["WCRGModel", "WSGMModel"]
