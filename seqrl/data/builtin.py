"""The built-in seqrl datasets: mixed-quality Minari datasets that seqrl generates locally on first use.

A :class:`BuiltinRecipe` says how one is made: its environment and, in order, blocks of episodes
(:class:`QualityLevel`) of a behaviour policy at a noise level (random, medium and expert for the datasets in
:data:`BUILTIN_RECIPES`), collected with :func:`seqrl.data.collect.collect` and written with
:func:`seqrl.data.collect.write_minari`. :func:`generate_builtin` builds a dataset under the Minari root, or
loads it if it is there; ``seqrl.data.load_dataset("seqrl/...")`` and
``python -m seqrl.data.collect --builtin ID`` go through it.
"""

from __future__ import annotations

import dataclasses

import minari

from seqrl.data.collect import CollectError, DatasetExistsError, collect, dataset_exists, episode_returns, write_minari


@dataclasses.dataclass(frozen=True)
class QualityLevel:
    """One block of episodes in a built-in dataset: ``episodes`` of ``policy`` with ``noise``."""

    label: str
    policy: str
    noise: float
    episodes: int


@dataclasses.dataclass(frozen=True)
class BuiltinRecipe:
    """How a built-in dataset is made: quality levels in order, and the episodes used for ref scores.

    Level ``j`` is collected with seed ``j``; the reference scores (mean return of the random policy
    and of the noise-free scripted controller) with seeds 100 and 101, so they come from episodes
    that are not in the dataset.
    """

    env_id: str
    levels: tuple[QualityLevel, ...]
    ref_episodes: int = 50

    def describe(self) -> str:
        parts = ", ".join(
            f"{q.episodes} {q.label} ({q.policy}" + (f", noise {q.noise}" if q.noise else "") + ")" for q in self.levels
        )
        return (
            f"{self.env_id}: {parts}, in that order. ref_min_score / ref_max_score: mean return of the random "
            f"policy / the noise-free scripted controller over {self.ref_episodes} separate episodes."
        )


BUILTIN_RECIPES: dict[str, BuiltinRecipe] = {
    # Mean returns (measured): random about -1230, medium about -690 (heavy Gaussian noise on the
    # swing-up controller, spread -1090..-250, midway), expert about -155.
    "seqrl/pendulum/mixed-v0": BuiltinRecipe(
        "Pendulum-v1",
        (QualityLevel("random", "random", 0.0, 200), QualityLevel("medium", "scripted", 1.75, 200),
         QualityLevel("expert", "scripted", 0.1, 200)),
    ),
    # Mean returns (measured): random about 21, medium about 240 (epsilon 0.45, spread 13..500), expert 500.
    "seqrl/cartpole/mixed-v0": BuiltinRecipe(
        "CartPole-v1",
        (QualityLevel("random", "random", 0.0, 200), QualityLevel("medium", "scripted", 0.45, 200),
         QualityLevel("expert", "scripted", 0.1, 100)),
    ),
}
BUILTIN_DATASETS: dict[str, str] = {dataset_id: recipe.describe() for dataset_id, recipe in BUILTIN_RECIPES.items()}


def generate_builtin(dataset_id: str, progress: bool = False, num_envs: int = 16) -> minari.MinariDataset:
    """Load the built-in dataset ``dataset_id``, generating it under the Minari root on first use.

    Idempotent (an existing dataset is loaded, never rebuilt) and atomic (see :func:`write_minari`);
    if two processes race, the second one loads the first one's dataset.
    """
    if dataset_id not in BUILTIN_RECIPES:
        raise CollectError(f"Unknown built-in dataset '{dataset_id}'. Built-in datasets: {sorted(BUILTIN_RECIPES)}.")
    if dataset_exists(dataset_id):
        return minari.load_dataset(dataset_id)
    recipe = BUILTIN_RECIPES[dataset_id]
    buffers, summary = [], []
    for level_seed, level in enumerate(recipe.levels):
        level_buffers = collect(recipe.env_id, level.policy, level.episodes, level_seed, level.noise, num_envs, progress=progress)
        buffers += level_buffers
        summary.append(f"{level.label} {episode_returns(level_buffers).mean():.1f}")
    ref_min = episode_returns(collect(recipe.env_id, "random", recipe.ref_episodes, 100, num_envs=num_envs)).mean()
    ref_max = episode_returns(collect(recipe.env_id, "scripted", recipe.ref_episodes, 101, num_envs=num_envs)).mean()
    description = f"seqrl built-in dataset. {recipe.describe()} Mean returns: {', '.join(summary)}."
    try:
        return write_minari(
            dataset_id, buffers, recipe.env_id, ref_min_score=float(ref_min), ref_max_score=float(ref_max),
            algorithm_name="seqrl scripted controllers (random / medium / expert)", description=description,
            num_episodes_average_score=recipe.ref_episodes,
        )
    except DatasetExistsError:
        return minari.load_dataset(dataset_id)
