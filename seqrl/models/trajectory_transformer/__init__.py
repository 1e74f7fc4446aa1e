"""Trajectory Transformer: configuration, model, discretiser and beam-search planner."""

from seqrl.models.trajectory_transformer.configuration_trajectory_transformer import TrajectoryTransformerConfig
from seqrl.models.trajectory_transformer.discretiser import Discretiser, fit_edges
from seqrl.models.trajectory_transformer.modeling_trajectory_transformer import TrajectoryTransformer
from seqrl.models.trajectory_transformer.planner import PlannerConfig, beam_plan

__all__ = ["Discretiser", "PlannerConfig", "TrajectoryTransformer", "TrajectoryTransformerConfig", "beam_plan", "fit_edges"]
