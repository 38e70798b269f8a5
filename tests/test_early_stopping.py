"""Early stopping and the best checkpoint: stops, says why, keeps the best, marks it everywhere."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from workbench.config import ConfigError, from_dict

from conftest import ROOT


def run_cfg(tiny_model_dir, **keys):
    return from_dict(
        {
            "model_name_or_path": str(tiny_model_dir),
            "dataset": "identity",
            "dataset_dir": str(ROOT / "data"),
            "max_steps": 40,
            "save_steps": 2,
            "logging_steps": 1,
            "per_device_train_batch_size": 4,
            "learning_rate": 5e-3,
            "cutoff_len": 96,
            "lora_rank": 4,
            "val_size": 8,
            "save_total_limit": None,
            **keys,
        }
    )


def test_a_run_stops_early_keeps_its_best_checkpoint_and_says_why(tiny_model_dir, tmp_path):
    from workbench.chat import BEST_MARK, best_checkpoint, labelled_choices, list_targets
    from workbench.export.card import best_checkpoint_lines
    from workbench.export.source import run_source
    from workbench.train import run

    # a threshold no improvement can beat: the second validation counts as "not better"
    cfg = run_cfg(
        tiny_model_dir, early_stopping_patience=1, early_stopping_threshold=100.0, load_best_model_at_end=True
    )
    run_dir = tmp_path / "saves" / "early"
    run(cfg, run_dir, echo=False)
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    end = events[-1]
    assert end["type"] == "end" and end["step"] == 4 and end["reason"].startswith("early stopping: eval_loss")
    evals = {e["step"]: e["eval_loss"] for e in events if e["type"] == "eval"}
    best_step = min(evals, key=evals.get)
    assert end["best_checkpoint"] == best_checkpoint(run_dir) == f"checkpoint-{best_step}"
    assert end["best_metric"] == pytest.approx(evals[best_step]) and end["final_is_best"]
    # final/ holds the best checkpoint's weights, not the last step's
    final = load_file(run_dir / "final" / "adapter_model.safetensors")
    best = load_file(run_dir / f"checkpoint-{best_step}" / "adapter_model.safetensors")
    assert final.keys() == best.keys() and all((final[k] == best[k]).all() for k in final)
    # marked in the pickers (chat, eval, export) and the model card
    labels = dict((value, label) for label, value in labelled_choices(list_targets(run_dir.parent), run_dir.parent))
    assert labels[f"early/checkpoint-{best_step}"].endswith(BEST_MARK) and labels["early"].endswith(BEST_MARK)
    other = 4 if best_step == 2 else 2
    assert labels[f"early/checkpoint-{other}"] == f"early/checkpoint-{other}"
    assert (
        f"**checkpoint-{best_step}** (this export holds its weights)" in best_checkpoint_lines(run_source(run_dir))[0]
    )


def test_without_early_stopping_the_run_finishes_and_tracks_the_best(tiny_model_dir, tmp_path):
    from workbench.chat import BEST_MARK, labelled_choices
    from workbench.train import run

    run_dir = tmp_path / "plain"
    run(run_cfg(tiny_model_dir, max_steps=4), run_dir, echo=False)
    end = json.loads((run_dir / "events.jsonl").read_text().splitlines()[-1])
    assert end["reason"] == "finished all 4 steps" and end["best_checkpoint"] and not end["final_is_best"]
    labels = dict((v, lbl) for lbl, v in labelled_choices(["plain"], tmp_path))
    assert labels["plain"] == "plain"  # final/ is the last step, not the best
    assert not labels["plain"].endswith(BEST_MARK)


@pytest.mark.parametrize(
    "keys, message",
    [
        ({"early_stopping_patience": 2}, "'early_stopping_patience' needs a validation split"),
        ({"load_best_model_at_end": True}, "'load_best_model_at_end' needs a validation split"),
        (
            {"early_stopping_patience": 2, "val_size": 0.1, "save_steps": 10, "eval_steps": 4},
            "'save_steps' (10) must be a multiple of 'eval_steps' (4)",
        ),
        (
            {"early_stopping_patience": 2, "val_size": 0.1, "metric_for_best_model": " "},
            "'metric_for_best_model' is empty",
        ),
        ({"early_stopping_patience": 0, "val_size": 0.1}, "early_stopping_patience"),
    ],
)
def test_bad_early_stopping_settings_are_refused(keys, message):
    with pytest.raises(ConfigError) as err:
        from_dict({"dataset": "identity", **keys})
    assert message in str(err.value)


def test_the_runs_table_shows_the_best_checkpoint(tmp_path):
    from workbench.ui.train_tab import best_of

    ckpt = tmp_path / "r" / "checkpoint-6"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text(
        json.dumps({"best_model_checkpoint": str(tmp_path / "r" / "checkpoint-4")})
    )
    assert best_of(tmp_path / "r") == "checkpoint-4 ★ best"
    assert best_of(tmp_path / "nothing") == ""
