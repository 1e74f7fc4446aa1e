"""Every built-in algorithm; importing this package registers them in :mod:`seqrl.registry`."""

from seqrl.algos.dt import DecisionTransformerAlgorithm, DTConfig

__all__ = ["DTConfig", "DecisionTransformerAlgorithm"]
