"""Decision Transformer: configuration and model."""

from seqrl.models.decision_transformer.configuration_decision_transformer import DecisionTransformerConfig
from seqrl.models.decision_transformer.modeling_decision_transformer import DecisionTransformer

__all__ = ["DecisionTransformer", "DecisionTransformerConfig"]
