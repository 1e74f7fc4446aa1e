"""Configuration of the seqrl Trajectory Transformer policy."""

from __future__ import annotations

from transformers import PretrainedConfig

from seqrl.models.policy_config import PolicyConfigMixin


class TrajectoryTransformerConfig(PolicyConfigMixin, PretrainedConfig):
    """Hyperparameters of a Trajectory Transformer (Janner, Li & Levine 2021) and its planner.

    Defaults are the reference code's (jannerm/trajectory-transformer, ``config/offline.py``): 100 bins
    per dimension, 4 GPT-2 blocks with 4 heads, a 128-wide embedding, windows of 10 transitions and
    dropout 0.1. Everything planning needs travels with the config and the weights (the bin edges are a
    buffer in ``model.safetensors``), so a saved folder plans with nothing else.

    Args:
        state_dim: size of the flat observation vector.
        act_dim: size of the action vector; for discrete actions the number of actions.
        discrete_actions: one action token holding the action id, instead of one token per action dimension.
        n_bins: N, the bins (tokens) of every dimension; token N is the stop token after an episode's end.
        hidden_size: width of the embeddings and GPT-2 blocks.
        n_layer: number of GPT-2 blocks.
        n_head: attention heads per block.
        activation_function: the block MLP's activation: the exact (erf) GELU, the reference's ``nn.GELU()``
            (also about 4x faster on CPU than PyTorch's tanh-approximation kernel, measured on a Xeon).
        resid_pdrop, embd_pdrop, attn_pdrop: dropout rates, as in GPT-2.
        layer_norm_epsilon: epsilon of the layer norms.
        initializer_range: std of the normal init of linear, embedding and head weights.
        max_ep_len: size of the timestep embedding table (later timesteps share its last row).
        window: transitions per training window (``window * transition_dim - 1`` input tokens).
        discount: gamma of the values the model predicts, and of the planner's returns.
        planner: the beam search's settings (:class:`seqrl.models.trajectory_transformer.planner.PlannerConfig`
            as a dict), resolved for the env when the model is made.
    """

    model_type = "seqrl_trajectory_transformer"

    def __init__(
        self,
        state_dim: int = 1,
        act_dim: int = 1,
        discrete_actions: bool = False,
        n_bins: int = 100,
        hidden_size: int = 128,
        n_layer: int = 4,
        n_head: int = 4,
        activation_function: str = "gelu",
        resid_pdrop: float = 0.1,
        embd_pdrop: float = 0.1,
        attn_pdrop: float = 0.1,
        layer_norm_epsilon: float = 1e-5,
        initializer_range: float = 0.02,
        max_ep_len: int = 1000,
        window: int = 10,
        discount: float = 0.99,
        planner: dict | None = None,
        **kwargs,
    ):
        self.state_dim = state_dim
        self.act_dim = act_dim
        self.discrete_actions = discrete_actions
        self.n_bins = n_bins
        self.hidden_size = hidden_size
        self.n_layer = n_layer
        self.n_head = n_head
        self.activation_function = activation_function
        self.resid_pdrop = resid_pdrop
        self.embd_pdrop = embd_pdrop
        self.attn_pdrop = attn_pdrop
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        self.max_ep_len = max_ep_len
        self.window = window
        self.discount = discount
        self.planner = dict(planner or {})
        super().__init__(**kwargs)

    @property
    def action_tokens(self) -> int:
        """Tokens per action: one id for discrete actions, one per dimension for continuous ones."""
        return 1 if self.discrete_actions else self.act_dim

    @property
    def transition_dim(self) -> int:
        """D = observation tokens + action tokens + reward + value."""
        return self.state_dim + self.action_tokens + 2
