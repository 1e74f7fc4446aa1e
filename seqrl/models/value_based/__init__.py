"""Acting policies of the value-based methods: configurations and models."""

from seqrl.models.value_based.configuration_value_based import (
    ActorPolicyConfig,
    BCQPolicyConfig,
    DiscreteBCQPolicyConfig,
    DiscreteQPolicyConfig,
)
from seqrl.models.value_based.modeling_value_based import ActorPolicy, BCQPolicy, DiscreteBCQPolicy, DiscreteQPolicy

__all__ = [
    "ActorPolicy",
    "ActorPolicyConfig",
    "BCQPolicy",
    "BCQPolicyConfig",
    "DiscreteBCQPolicy",
    "DiscreteBCQPolicyConfig",
    "DiscreteQPolicy",
    "DiscreteQPolicyConfig",
]
