"""The point of a Decision Transformer: on mixed-quality data, a higher target return gives a higher
achieved return. Trained end to end on the built-in Pendulum mixed dataset."""

from __future__ import annotations

import json
import os
from unittest import mock

import pytest

from seqrl.training.cli import parse_train_args
from seqrl.training.loop import train

from ..conftest import REPO


@pytest.mark.slow
def test_dt_reaches_a_higher_return_at_the_expert_target(builtin_minari_root, tmp_path):
    with mock.patch.dict(os.environ, {"MINARI_DATASETS_PATH": str(builtin_minari_root)}):
        cfg = parse_train_args(["--config", str(REPO / "configs/dt/pendulum-mixed.yaml"), "--output_dir",
                                str(tmp_path / "run"), "--steps", "1500", "--checkpoint_every", "0",
                                "--eval.episodes", "10", "--eval.num_envs", "10"])
        run = train(cfg)
    rows = json.loads((run / "eval_info.json").read_text())["results"]
    by_target = {row["target_return"]: row for row in rows}
    low, high = by_target[min(by_target)], by_target[max(by_target)]
    # Targets are the data's reference random and expert returns (about -1200 and -160).
    assert high["return_mean"] > low["return_mean"] + 300, rows
    assert high["normalized_score_mean"] > 60, rows
