"""Training configuration: nested dataclasses, loaded from ``configs/<algo>/<dataset>.yaml`` and
overridden from the command line with dotted keys (``--algo.learning_rate 3e-4``), via draccus."""

from __future__ import annotations

from dataclasses import dataclass, field

from seqrl.algos import DTConfig
from seqrl.algos.base import AlgoConfig
from seqrl.evaluation.config import EvalSettings
from seqrl.online.config import OnlineConfig


@dataclass
class DataConfig:
    dataset: str = "seqrl/pendulum/mixed-v0"
    """A Minari id (local, MINARI_DATASETS_PATH honoured; seqrl/* ids are generated on first use), a Minari
    or `datasets` folder, a D4RL-style .hdf5/.npz file, or a Hub dataset repo id."""
    validate: bool = True
    """Check the data (NaN/inf, shapes, bounds, episode flags) before training."""
    env_id: str | None = None
    """The environment the data was collected in, or one that replaces the env the dataset names (e.g. data from
    Hopper-v4, trained for Hopper-v5): a registered id, `module:Id-v0`, or an entry point `module:EnvClass`. Its
    spaces (and so the action bounds), the evaluation env and the saved policy's env come from it; its spaces
    must fit the data's."""
    env_kwargs: dict = field(default_factory=dict)
    """Keyword arguments of that env, e.g. '{"g": 5.0}' (without env_id: on top of the dataset's env kwargs)."""
    action_low: list[float] | None = None
    """Lower bounds of continuous actions, one per dimension, e.g. '[-2.0]', for data that names no env (default:
    the data's own minimum). Given with action_high."""
    action_high: list[float] | None = None
    """Upper bounds of continuous actions, one per dimension (default: the data's own maximum)."""
    drop_invalid_episodes: bool = False
    """Drop episodes with NaN/inf values and one-step episodes, and mark episodes that end without a flag as
    truncated, reporting how many of each and which, instead of refusing the data."""


@dataclass
class EvalConfig(EvalSettings):
    """Evaluation during and after training (``--eval.*``): the settings of evaluate.py, and when to run them."""

    every: int = 0
    """Evaluate every N training steps (0: only at the end)."""
    final: bool = True
    """Evaluate the final policy and write eval_info.json and the return-conditioning plot."""
    video: bool = False
    """Record one episode per target return of the final evaluation into videos/ in the run folder (MP4, pushed
    with the policy)."""


@dataclass
class TrainConfig:
    algo: AlgoConfig = field(default_factory=DTConfig)
    """The algorithm and its hyperparameters; `type` names it (see `seqrl.registry`)."""
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)
    """Online fine-tuning after the offline steps (--online.env_steps N; 0: offline only)."""
    env_import: list[str] = field(default_factory=list)
    """Modules to import before any environment is made: the package that registers a custom env
    (`--env_import my_package.envs`). Saved with the policy, so that it names its env again."""
    output_dir: str | None = None
    """Run folder: the final policy, checkpoints/, logs/, train_config.yaml, eval_info.json.
    Default: runs/<algo>-<dataset>."""
    steps: int = 100_000
    """Offline gradient steps (a resumed run continues up to this number); 0 with --init_from and
    --online.env_steps goes straight to online fine-tuning."""
    seed: int = 0
    """Seed of model init, sampling and dropout."""
    init_from: str | None = None
    """Start from the weights of a trained policy (folder or Hub id) of the same algorithm and sizes,
    e.g. to fine-tune it on new data or online. From a run folder with checkpoints, the critics and
    every other trained module come too; target networks restart as copies. Ignored when resuming."""
    resume: bool = False
    """Continue from the last complete checkpoint in output_dir (`--resume` or `--resume true`), with the run's
    saved train_config.yaml unless --config is given."""
    resume_from_checkpoint: str | None = None
    """Continue from this checkpoint folder (e.g. runs/x/checkpoints/step-00001000) instead of the latest one, into
    output_dir (with its saved train_config.yaml unless --config is given)."""
    log_every: int = 100
    """Log metrics to the trackers and the progress bar every N steps."""
    report_to: str = "tensorboard"
    """Where metrics go: "tensorboard" (logs/ in the run folder), "wandb" (needs `pip install wandb`) or "none"."""
    log_level: str = "info"
    """"debug", "info", "warning" or "error": how much seqrl reports (TQDM_DISABLE=1 hides the progress bars)."""
    checkpoint_every: int = 1000
    """Write a checkpoint every N steps (0: only at the end)."""
    keep_checkpoints: int = 2
    """How many of the newest checkpoints to keep."""
    mixed_precision: str = "auto"
    """"auto" (the setting of `accelerate launch --mixed_precision` or `accelerate config` when launched through
    Accelerate, else bf16 autocast on GPUs that support it and on CPUs with AMX-BF16 or AVX512-BF16, float32
    elsewhere; the run's first lines say which), "no" (float32), "bf16" or "fp16". Under bf16, weights and optimizer
    state stay float32."""
    compile: bool = False
    """Compile the algorithm with torch.compile."""
    push_to_hub: str | None = None
    """Push the final policy, its reports and a model card to this Hub model repo (`namespace/name`); log in
    first with `hf auth login` or set HF_TOKEN. Not saved in train_config.yaml."""
    private: bool = False
    """Create the --push_to_hub repo as private."""
    push_every_checkpoint: bool = False
    """Also push each checkpoint's policy as it is written, in the background (training does not wait)."""

    @property
    def algo_name(self) -> str:
        from seqrl.registry import entry_for_config

        return entry_for_config(self.algo).name
