"""Preprocessing on MuData / AnnData, scanpy-style: :func:`highly_variable_atses`."""

from ._highly_variable import highly_variable_atses

__all__ = ["highly_variable_atses"]
