"""Model and dataset cards (the repo's README.md): YAML metadata the Hub indexes, and a body a person reads.

The model card's front matter carries ``library_name: seqrl``, tags, the training dataset when it lives
on the Hub, and a ``model-index`` with the evaluation results (one ``mean_reward`` and, with reference
scores, one ``normalized_score`` metric per target return), built with huggingface_hub's
:class:`~huggingface_hub.ModelCardData` so that it follows the Hub's schema. The body gives the
algorithm and its paper, the environment, the data and its statistics, the results table and the
return-conditioning plot, the commands to evaluate, reproduce and fine-tune, and the training config.
"""

from __future__ import annotations


from pathlib import Path

from huggingface_hub import DatasetCard, EvalResult, ModelCard, ModelCardData
from huggingface_hub.utils import validate_repo_id
from minari.dataset.minari_dataset import DATASET_ID_RE

from seqrl.data.schema import COLUMNS, DatasetMetadata
from seqrl.hub.run_folder import RunFolder

MINARI_HUB_ORG = "farama-minari"  # Minari's default remote, hf://farama-minari: one dataset repo per namespace
MINARI_REMOTE_NAMESPACES = ("D4RL", "mujoco", "atari")  # namespaces of Farama's published Minari datasets
_LOCAL_SUFFIXES = (".hdf5", ".h5", ".npz")
_TASK = "reinforcement-learning"
# The dataset metadata as a one-row Parquet subset of the repo, so that plain `datasets.load_dataset` reads it too
# (Parquet files of the data itself carry only the features, not the dataset's description).
METADATA_CONFIG = "seqrl_metadata"
METADATA_PARQUET = f"{METADATA_CONFIG}/train-00000-of-00001.parquet"
DEFAULT_LICENSE = "apache-2.0"  # seqrl's own; pass another with `seqrl-hub push --license` / push_policy(license=)
DATASET_LICENSE = "cc-by-4.0"  # Minari's datasets'; pass another with `seqrl-hub push_dataset --license`


def hub_dataset_id(dataset_id: str | None) -> str | None:
    """The Hub dataset repo that holds ``dataset_id``, or None when it is local or generated.

    A ``namespace/name`` id is a Hub repo; a Minari id ``namespace/name-vN`` from one of Farama's
    published namespaces lives in ``farama-minari/<namespace>``; built-in ``seqrl/...`` ids, paths and
    files are generated or read locally and have no Hub page.
    """
    if not dataset_id or dataset_id.startswith(("/", ".", "~")) or dataset_id.endswith(_LOCAL_SUFFIXES):
        return None
    parts = dataset_id.split("/")
    if len(parts) == 2:
        try:
            validate_repo_id(dataset_id)
        except ValueError:
            return None
        return dataset_id
    if len(parts) >= 3 and parts[0] in MINARI_REMOTE_NAMESPACES and DATASET_ID_RE.fullmatch(dataset_id):
        return f"{MINARI_HUB_ORG}/{parts[0]}"
    return None


# ---------------------------------------------------------------- model card


def model_card(run: RunFolder, repo_id: str, revision: str | None = None, license: str = DEFAULT_LICENSE) -> ModelCard:
    """The README.md pushed with ``run`` to ``repo_id``. ``base_model`` is the Hub policy the run started from
    (``--init_from``), so the Hub links the two."""
    config, algo = run.config, run.entry.name
    env_id = config.get("env_id")
    hub_data = hub_dataset_id(run.dataset_id)
    data = ModelCardData(
        license=license,
        base_model=base_model(run),
        library_name="seqrl",
        pipeline_tag=_TASK,
        tags=[_TASK, "offline-rl", algo] + ([env_id] if env_id else []),
        datasets=[hub_data] if hub_data else None,
        model_name=repo_id,
        eval_results=_eval_results(run.eval_report, env_id) or None,
    )
    sections = [
        _overview(run, repo_id),
        _results_section(run),
        _videos_section(run),
        _dataset_section(run),
        _usage_section(run, repo_id, revision),
        _config_section(run),
    ]
    body = "\n\n".join(section for section in sections if section) + "\n"
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def base_model(run: RunFolder) -> str | None:
    """The Hub repo of train_config.yaml's ``init_from``, when it names one (a local folder has no Hub page)."""
    source = (run.train_config or {}).get("init_from")
    if not source or Path(str(source)).exists() or str(source).startswith(("/", ".", "~")):
        return None
    try:
        validate_repo_id(str(source))
    except ValueError:
        return None
    return str(source) if "/" in str(source) else None


def _videos_section(run: RunFolder) -> str | None:
    videos = [name for name in run.files if name.startswith("videos/")]
    if not videos:
        return None
    lines = ["## Videos", "", "One evaluation episode per target return (the first seed of the evaluation).", ""]
    for name in videos:
        lines += [f"**{Path(name).stem}**", "", f'<video controls src="{name}"></video>', ""]
    return "\n".join(lines).rstrip("\n")


def _eval_results(report: dict | None, env_id: str | None) -> list[EvalResult]:
    if not report or not env_id:
        return []
    results = []
    for row in report["results"]:
        at = "" if row["target_return"] is None else f" at target return {row['target_return']:g}"
        common = dict(task_type=_TASK, task_name=_TASK, dataset_type=env_id, dataset_name=env_id)
        args = None if row["target_return"] is None else {"target_return": row["target_return"]}
        results.append(EvalResult(**common, metric_type="mean_reward", metric_name=f"mean return{at}",
                                  metric_value=f"{row['return_mean']:.2f} +/- {row['return_std']:.2f}", metric_args=args))
        if row["normalized_score_mean"] is not None:
            results.append(EvalResult(**common, metric_type="normalized_score", metric_name=f"normalised score{at}",
                                      metric_value=round(row["normalized_score_mean"], 2), metric_args=args))
    return results


def _overview(run: RunFolder, repo_id: str) -> str:
    config, entry = run.config, run.entry
    env_id = config.get("env_id") or "an unspecified environment"
    if config.get("discrete_actions"):
        actions = f"{config.get('act_dim')} discrete actions"
    else:
        low, high = config.get("action_low"), config.get("action_high")
        bounds = ""
        if low is not None and len(set(low)) == 1 and len(set(high)) == 1:
            bounds = f" in [{_numbers(low[:1])}, {_numbers(high[:1])}]"
        elif low is not None:
            bounds = f" between [{_numbers(low)}] and [{_numbers(high)}]"
        actions = f"{config.get('act_dim')}-dimensional continuous actions{bounds}"
    lines = [
        f"# {entry.policy.__name__} (`{entry.name}`) for {env_id}",
        "",
        f"An offline RL policy trained with seqrl and saved as a `transformers` "
        f"model (`{config.get('model_type')}`). Load it with `seqrl.registry.load_policy(\"{repo_id}\")`: everything "
        "it needs to act (observation normalisation, action bounds, reference scores and, for return-conditioned "
        "policies, default target returns) is in `config.json`, and the weights are in `model.safetensors`.",
        "",
        f"- **Algorithm:** `{entry.name}`, from {entry.paper}.",
        f"- **Environment:** `{env_id}`" + (f" with `{config['env_kwargs']}`" if config.get("env_kwargs") else ""),
        f"- **Observations / actions:** {config.get('state_dim')}-dimensional observations; {actions}.",
    ]
    if config.get("target_returns"):
        lines.append(f"- **Default target returns:** {_numbers(config['target_returns'])} (return-conditioned policy).")
    if config.get("ref_min_score") is not None and config.get("ref_max_score") is not None:
        lines.append(f"- **Reference returns for the normalised score:** {config['ref_min_score']:g} (0) and "
                     f"{config['ref_max_score']:g} (100).")
    return "\n".join(lines)


def _results_section(run: RunFolder) -> str | None:
    report = run.eval_report
    if not report:
        return None
    rows = report["results"]
    conditioned = any(row["target_return"] is not None for row in rows)
    where = f"`{report.get('env_id')}`" + (" per target return" if conditioned else "")
    columns = ["Return (mean ± std)", "Normalised score", "Episode length", "Episodes"]
    columns = (["Target return"] if conditioned else []) + columns
    lines = ["## Evaluation", "",
             f"Return achieved in {where}, from `eval_info.json`. The normalised score is "
             "`100 * (R - ref_min) / (ref_max - ref_min)`.", "",
             "| " + " | ".join(columns) + " |", "|" + "---:|" * len(columns)]
    for row in rows:
        score = "–" if row["normalized_score_mean"] is None else f"{row['normalized_score_mean']:.1f}"
        cells = [f"{row['return_mean']:.1f} ± {row['return_std']:.1f}", score, f"{row['episode_length_mean']:.1f}",
                 str(row["episodes"])]
        if conditioned:
            cells.insert(0, "–" if row["target_return"] is None else f"{row['target_return']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    if "eval_info.png" in run.files:
        lines += ["", "![Achieved return against target return](eval_info.png)", "",
                  "Achieved return (mean ± std) against the target return; a perfectly return-conditioned policy "
                  "follows the dashed line."]
    return "\n".join(lines)


def _dataset_section(run: RunFolder) -> str | None:
    dataset_id = run.dataset_id
    if not dataset_id:
        return None
    hub_id = hub_dataset_id(dataset_id)
    if dataset_id.startswith("seqrl/"):
        origin = ("a built-in seqrl dataset, generated locally on first use "
                  f"(`seqrl-collect --builtin {dataset_id}`)")
    elif hub_id and hub_id != dataset_id:
        origin = (f"a Minari dataset, hosted in [{hub_id}](https://huggingface.co/datasets/{hub_id}) "
                  f"(`minari download {dataset_id}`)")
    elif hub_id:
        origin = f"a Hub dataset, [{hub_id}](https://huggingface.co/datasets/{hub_id})"
    else:
        origin = "a local dataset"
    lines = ["## Training data", "", f"`{dataset_id}`: {origin}."]
    if run.dataset_metadata is not None and run.dataset_metadata.stats:
        lines += ["", _stats_table(run.dataset_metadata)]
    return "\n".join(lines)


def _stats_table(metadata: DatasetMetadata) -> str:
    stats = metadata.stats
    rows = [("Episodes", f"{stats['num_episodes']}"), ("Steps", f"{stats['num_steps']}")]
    if "return_mean" in stats:
        rows += [("Return (mean ± std)", f"{stats['return_mean']:.1f} ± {stats['return_std']:.1f}"),
                 ("Return (min / max)", f"{stats['return_min']:.1f} / {stats['return_max']:.1f}"),
                 ("Episode length (mean, min / max)",
                  f"{stats['length_mean']:.1f}, {stats['length_min']} / {stats['length_max']}")]
    if metadata.ref_min_score is not None and metadata.ref_max_score is not None:
        rows.append(("Reference returns (min / max)", f"{metadata.ref_min_score:g} / {metadata.ref_max_score:g}"))
    return "\n".join(["| Statistic | Value |", "|---|---:|"] + [f"| {name} | {value} |" for name, value in rows])


def _usage_section(run: RunFolder, repo_id: str, revision: str | None) -> str:
    rev = f" --revision {revision}" if revision else ""
    evaluate = f"seqrl-eval --policy {repo_id}{rev}"
    report = run.eval_report
    targets = [r["target_return"] for r in report["results"] if r["target_return"] is not None] if report else []
    targets = targets or run.config.get("target_returns") or []
    if run.return_conditioned and targets:
        evaluate += f" --target_returns {_numbers(targets, ' ')}"
    if report:
        evaluate += f" --episodes {report['results'][0]['episodes']}"
        if report.get("num_envs") is not None:  # env i runs episodes i, i + num_envs, ...: the split matters
            evaluate += f" --num_envs {report['num_envs']}"
        if report.get("seed") is not None:
            evaluate += f" --seed {report['seed']}"
    lines = ["## Usage", "", "```python", "import gymnasium as gym", "from seqrl.registry import load_policy", "",
             f'policy = load_policy("{repo_id}"' + (f', revision="{revision}"' if revision else "") + ")",
             "env = gym.make(policy.config.env_id, **policy.config.env_kwargs)",
             "observation, _ = env.reset(seed=0)",
             "policy.reset(batch_size=1"
             + (", target_return=policy.config.target_returns[-1])" if run.return_conditioned else ")"),
             "action = policy.act(observation[None])[0]  # act on a batch: one row per environment",
             "```", "", "### Evaluate", "", "```bash", evaluate, "```"]
    if run.train_config_text is not None:
        name = repo_id.split("/")[-1]
        lines += ["", "### Reproduce", "", "The training config is in this repo (`train_config.yaml`, shown below).",
                  "", "```bash", f"hf download {repo_id} train_config.yaml --local-dir {name}{rev}"]
        if hub_dataset_id(run.dataset_id) not in (None, run.dataset_id):
            lines.append(f"minari download {run.dataset_id}")
        lines += [f"seqrl-train --config {name}/train_config.yaml --output_dir runs/{name}", "```"]
    lines += ["", "### Fine-tune", "", "Continue training from these weights, e.g. on new data:", "",
              "```bash", _finetune_command(run, repo_id), "```"]
    return "\n".join(lines)


def _finetune_command(run: RunFolder, repo_id: str) -> str:
    """Continue training from the pushed weights (``train.py --init_from``)."""
    name = repo_id.split("/")[-1]
    config = f" --config {name}/train_config.yaml" if run.train_config_text is not None else f" --algo {run.entry.name}"
    dataset = run.dataset_id or "DATASET"
    return f"seqrl-train{config} --init_from {repo_id} --data.dataset {dataset} --output_dir runs/{name}-finetuned"


def _config_section(run: RunFolder) -> str | None:
    if run.train_config_text is None:
        return None
    return "\n".join(["## Training configuration", "", "```yaml", run.train_config_text.rstrip("\n"), "```"])


def _numbers(values, separator: str = ", ") -> str:
    return separator.join(f"{round(float(v), 2):g}" for v in values)


# ---------------------------------------------------------------- dataset card


def size_category(num_rows: int) -> str:
    """The Hub's ``size_categories`` bucket of ``num_rows`` ("n<1K", "1K<n<10K", ..., "n>1T")."""
    bounds = [(10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"),
              (10**7, "1M<n<10M"), (10**8, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B"),
              (10**11, "10B<n<100B"), (10**12, "100B<n<1T")]
    return next((name for bound, name in bounds if num_rows < bound), "n>1T")


def dataset_card(metadata: DatasetMetadata, repo_id: str, num_rows: int, base: str | None = None,
                 license: str = DATASET_LICENSE) -> DatasetCard:
    """The README.md of a seqrl dataset repo. ``base`` is the README that ``Dataset.push_to_hub`` wrote:
    its YAML (``configs``, ``dataset_info``) is kept, so the Hub viewer and ``datasets`` still find the data."""
    card = DatasetCard(base) if base else DatasetCard("---\n---\n")
    env_id = metadata.env_id
    card.data.pretty_name = metadata.dataset_id
    card.data.license = license
    card.data.size_categories = [size_category(num_rows)]
    card.data.task_categories = [_TASK]
    configs = [c for c in (card.data.get("configs") or []) if c.get("config_name") != METADATA_CONFIG]
    card.data.configs = configs + [{"config_name": METADATA_CONFIG,
                                    "data_files": [{"split": "train", "path": METADATA_PARQUET}]}]
    card.data.tags = sorted(set(card.data.get("tags") or []) | {"seqrl", "offline-rl"} | ({env_id} if env_id else set()))
    stats = metadata.stats
    lines = [
        f"# {metadata.dataset_id}", "",
        f"Offline RL data in the seqrl schema: one row per environment step "
        f"({num_rows} rows), episodes contiguous and in timestep order. The `{METADATA_CONFIG}` subset (one row, "
        "also in `seqrl_metadata.json`) holds the environment spec, the observation and action spaces, the "
        "reference scores and the statistics, readable without seqrl: "
        f"`datasets.load_dataset(\"{repo_id}\", \"{METADATA_CONFIG}\", split=\"train\")[0][\"{METADATA_CONFIG}\"]`.", "",
        f"- **Environment:** `{env_id or 'unknown'}`",
        f"- **Observation space:** `{metadata.observation_space_obj}`",
        f"- **Action space:** `{metadata.action_space_obj}`",
    ]
    if stats:
        lines += ["", "## Statistics", "", _stats_table(metadata)]
    lines += ["", "## Columns", "", ", ".join(f"`{name}`" for name in COLUMNS), "",
              "## Usage", "", "```python", "from seqrl.hub import load_dataset_from_hub", "",
              f'dataset = load_dataset_from_hub("{repo_id}")  # a datasets.Dataset with its seqrl metadata', "```", "",
              "Train on it with `seqrl-train --data.dataset " + repo_id + "`."]
    card.text = "\n".join(lines) + "\n"
    return card
