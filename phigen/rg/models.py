"""Registers the RG model kinds with :mod:`phigen.models`: ``wcrg`` (:mod:`phigen.rg.wcrg`)."""

from .wcrg import WCRGModel

__all__ = ["WCRGModel"]
