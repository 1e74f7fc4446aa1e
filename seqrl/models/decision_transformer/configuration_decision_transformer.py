"""Configuration of the seqrl Decision Transformer policy."""

from __future__ import annotations

from transformers import PretrainedConfig

from seqrl.errors import SeqRLError
from seqrl.models.policy_config import PolicyConfigMixin

ACTING_MODES = ("window", "cached")
ACTING_DEFAULT = "cached"


class DecisionTransformerConfig(PolicyConfigMixin, PretrainedConfig):
    """Hyperparameters of a Decision Transformer (Chen et al. 2021) and the preprocessing it acts with.

    Defaults are the paper's MuJoCo settings: context K=20, 128 hidden units, 3 GPT-2 layers with one
    head, dropout 0.1, ReLU in the MLP and a tanh action head. Everything needed to act in an
    environment travels with the config (see :class:`PolicyConfigMixin`), so a saved folder is
    evaluated with nothing else. ``stochastic=True`` gives the Online Decision Transformer's policy
    (Zheng et al. 2022): a tanh-squashed diagonal Gaussian over the actions.

    Args:
        state_dim: size of the flat observation vector.
        act_dim: size of the action vector; for discrete actions the number of actions.
        discrete_actions: predict logits over ``act_dim`` actions (cross-entropy) instead of a
            continuous vector (mean-squared error).
        hidden_size: width of every token embedding and of the GPT-2 blocks.
        n_layer: number of GPT-2 blocks.
        n_head: attention heads per block.
        n_inner: hidden width of the block MLP; ``None`` means ``4 * hidden_size``.
        activation_function: the block MLP's activation (the reference code uses ReLU).
        resid_pdrop, embd_pdrop, attn_pdrop: dropout rates, as in GPT-2.
        layer_norm_epsilon: epsilon of the layer norms.
        initializer_range: std of the normal init of linear and embedding weights.
        max_ep_len: size of the timestep embedding table; episodes must be shorter.
        context_len: K, the number of timesteps each token attends to (3K - 1 tokens). Training
            windows are K long.
        act_context_len: the number of timesteps each token attends to when acting (the rolling
            key/value cache holds that many); ``None`` means ``context_len``. At most ``context_len``
            (ODT trains with K=20 and acts with 5).
        action_tanh: squash continuous actions to [-1, 1] with tanh (they are then rescaled to the
            action bounds saved in the config).
        return_scale: returns-to-go are multiplied by this before the return embedding
            (1/1000 for MuJoCo, as in the paper).
        stochastic: continuous actions only. The policy is ``a = tanh(u)``, ``u ~ N(mu, sigma^2)``
            per action dimension, with ``mu`` from the action head and ``log sigma`` from a second
            linear head; acting uses the mode ``tanh(mu)``, or samples when exploring.
        log_std_min, log_std_max: the bounds ``log sigma`` is squashed into (with tanh, as in the
            Online DT reference code).
        acting: ``"window"`` recomputes the last ``act_context_len`` steps every step, exactly as
            training windows are seen (the reference's ``get_action``); ``"cached"`` computes only the
            3 new tokens over a rolling key/value cache, whose deeper layers see further back than
            training windows do. See the model's docstring for the measured difference.
    """

    model_type = "seqrl_decision_transformer"

    def __init__(
        self,
        state_dim: int = 1,
        act_dim: int = 1,
        discrete_actions: bool = False,
        hidden_size: int = 128,
        n_layer: int = 3,
        n_head: int = 1,
        n_inner: int | None = None,
        activation_function: str = "relu",
        resid_pdrop: float = 0.1,
        embd_pdrop: float = 0.1,
        attn_pdrop: float = 0.1,
        layer_norm_epsilon: float = 1e-5,
        initializer_range: float = 0.02,
        max_ep_len: int = 1000,
        context_len: int = 20,
        action_tanh: bool = True,
        return_scale: float = 1e-3,
        act_context_len: int | None = None,
        stochastic: bool = False,
        log_std_min: float = -5.0,
        log_std_max: float = 2.0,
        acting: str = ACTING_DEFAULT,
        **kwargs,
    ):
        if stochastic and discrete_actions:
            raise SeqRLError(
                "DecisionTransformerConfig: stochastic=True is a tanh-Gaussian over continuous actions, but "
                "discrete_actions=True. Use a continuous (Box) action space, or stochastic=False for discrete actions."
            )
        if stochastic and not action_tanh:
            raise SeqRLError(
                "DecisionTransformerConfig: stochastic=True squashes its Gaussian with tanh, so action_tanh=False "
                "contradicts it. Leave action_tanh=True."
            )
        if act_context_len is not None and not 1 <= act_context_len <= context_len:
            raise SeqRLError(
                f"DecisionTransformerConfig: act_context_len={act_context_len} must be between 1 and "
                f"context_len={context_len} (acting cannot attend to more timesteps than training windows hold)."
            )
        if acting not in ACTING_MODES:
            raise SeqRLError(f"DecisionTransformerConfig: acting={acting!r} must be one of {', '.join(ACTING_MODES)}.")
        if not log_std_min < log_std_max:
            raise SeqRLError(
                f"DecisionTransformerConfig: log_std_min={log_std_min} must be below log_std_max={log_std_max}."
            )
        self.state_dim = state_dim
        self.act_dim = act_dim
        self.discrete_actions = discrete_actions
        self.hidden_size = hidden_size
        self.n_layer = n_layer
        self.n_head = n_head
        self.n_inner = n_inner
        self.activation_function = activation_function
        self.resid_pdrop = resid_pdrop
        self.embd_pdrop = embd_pdrop
        self.attn_pdrop = attn_pdrop
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        self.max_ep_len = max_ep_len
        self.context_len = context_len
        self.action_tanh = action_tanh
        self.return_scale = return_scale
        self.act_context_len = act_context_len
        self.stochastic = stochastic
        self.log_std_min = log_std_min
        self.log_std_max = log_std_max
        self.acting = acting
        super().__init__(**kwargs)

    @property
    def acting_context_len(self) -> int:
        """Timesteps each token attends to when acting (``act_context_len``, or ``context_len``)."""
        return self.act_context_len or self.context_len

    @property
    def uses_target_return(self) -> bool:
        return True
