"""Every built-in algorithm; importing this package registers them in :mod:`seqrl.registry`."""

from seqrl.algos.awac import AWAC, AWACConfig
from seqrl.algos.bc import BC, BCConfig
from seqrl.algos.bcq import BCQ, BCQConfig
from seqrl.algos.bcq_discrete import DiscreteBCQ, DiscreteBCQConfig
from seqrl.algos.calql import CalQL, CalQLConfig
from seqrl.algos.cql import CQL, CQLConfig
from seqrl.algos.cql_discrete import DiscreteCQL, DiscreteCQLConfig
from seqrl.algos.dt import DecisionTransformerAlgorithm, DTConfig
from seqrl.algos.iql import IQL, IQLConfig
from seqrl.algos.odt import ODTConfig, OnlineDecisionTransformer
from seqrl.algos.td3bc import TD3BC, TD3BCConfig
from seqrl.algos.tt import TrajectoryTransformerAlgorithm, TTConfig

__all__ = [
    "AWAC",
    "AWACConfig",
    "BC",
    "BCConfig",
    "BCQ",
    "BCQConfig",
    "CQL",
    "CQLConfig",
    "CalQL",
    "CalQLConfig",
    "DTConfig",
    "DecisionTransformerAlgorithm",
    "DiscreteBCQ",
    "DiscreteBCQConfig",
    "DiscreteCQL",
    "DiscreteCQLConfig",
    "IQL",
    "IQLConfig",
    "ODTConfig",
    "OnlineDecisionTransformer",
    "TD3BC",
    "TD3BCConfig",
    "TTConfig",
    "TrajectoryTransformerAlgorithm",
]
