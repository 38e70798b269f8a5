"""Ratings from the Chat tab's core: rows appended to registered preference/KTO datasets,
atomically, readable by the data loader and the stages that train on them."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli

SETTINGS = {"temperature": 0.7, "max_new_tokens": 32, "seed": 1}
HISTORY = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]


@pytest.fixture()
def dataset_dir(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()  # the shipped datasets are read from the package beside it
    return folder


def rate(dataset_dir, name, kind, verdict, **keys):
    from workbench.ratings import rate as core_rate

    args = dict(
        prompt="What is 2+2?", history=HISTORY, answers=("4", "fish"), models=("base", "run-x"), settings=SETTINGS
    )
    args.update(keys)
    return core_rate(dataset_dir, name, kind, verdict, **args)


def test_compare_verdicts_build_a_preference_dataset_the_loader_reads(dataset_dir):
    from workbench.data import load_rows
    from workbench.data.registry import load_registry
    from workbench.ratings import ratings_datasets

    assert rate(dataset_dir, "prefs", "preference", "a")["rows"] == 1
    assert rate(dataset_dir, "prefs", "preference", "b")["rows"] == 2
    out = rate(dataset_dir, "prefs", "preference", "tie")
    assert out == {"rows": 2, "unpaired": 1, "ratings": 3, "added": 0, "kind": "preference"}
    rate(dataset_dir, "prefs", "preference", "both_bad")
    out = rate(dataset_dir, "prefs", "preference", "edit", answers=("5",), models=("run-x",), edited="2+2 is 4.")
    assert out["rows"] == 3 and out["ratings"] == 5

    # registered like an upload: in uploads/, found again by a fresh read of the registry
    assert (dataset_dir / "uploads" / "prefs.jsonl").is_file()
    assert "prefs" in load_registry(dataset_dir) and ratings_datasets(dataset_dir) == {"prefs": "preference"}
    rows, _ = load_rows(dataset_dir, ["prefs"])
    assert [(r["chosen"], r["rejected"]) for r in rows] == [("4", "fish"), ("fish", "4"), ("2+2 is 4.", "5")]
    assert rows[0]["messages"][-1] == {"role": "user", "content": "What is 2+2?"}
    assert rows[0]["messages"][0]["content"] == "Hi"  # the conversation so far
    raw = [json.loads(line) for line in (dataset_dir / "uploads" / "prefs.jsonl").read_text().splitlines()]
    assert raw[0]["model_a"] == "base" and raw[0]["model_b"] == "run-x" and raw[0]["settings"] == SETTINGS
    assert raw[1]["chosen_model"] == "run-x" and raw[0]["answer_b"] == "fish"


def test_single_judgements_build_a_kto_dataset(dataset_dir):
    from workbench.data import load_rows

    rate(dataset_dir, "liked", "kto", "up", answers=("4",), models=("base",))
    rate(dataset_dir, "liked", "kto", "down", answers=("fish",), models=("base",))
    out = rate(dataset_dir, "liked", "kto", "edit", answers=("5",), models=("base",), edited="4")
    assert out["rows"] == 4 and out["ratings"] == 3
    rate(dataset_dir, "liked", "kto", "a")  # compare verdicts work too: winner true, loser false
    rows, _ = load_rows(dataset_dir, ["liked"])
    assert [(r["completion"], r["label"]) for r in rows] == [
        ("4", True),
        ("fish", False),
        ("4", True),
        ("5", False),
        ("4", True),
        ("fish", False),
    ]


def test_bad_ratings_are_refused_and_nothing_is_written(dataset_dir):
    from workbench.ratings import RatingError

    rate(dataset_dir, "prefs", "preference", "a")
    before = (dataset_dir / "uploads" / "prefs.jsonl").read_bytes()
    with pytest.raises(RatingError, match="KTO"):
        rate(dataset_dir, "prefs", "preference", "up")
    with pytest.raises(RatingError, match="corrected"):
        rate(dataset_dir, "prefs", "preference", "edit", edited="  ")
    with pytest.raises(RatingError, match="prompt"):
        rate(dataset_dir, "prefs", "preference", "a", prompt="")
    with pytest.raises(RatingError, match="2 answer"):
        rate(dataset_dir, "prefs", "preference", "b", answers=("4",))
    with pytest.raises(RatingError, match="shipped"):
        rate(dataset_dir, "identity", "preference", "a")
    with pytest.raises(RatingError, match="name"):
        rate(dataset_dir, "../escape", "preference", "a")
    assert (dataset_dir / "uploads" / "prefs.jsonl").read_bytes() == before
    assert not (dataset_dir.parent / "escape.jsonl").exists()


def test_a_crash_while_writing_never_leaves_half_a_row(dataset_dir, monkeypatch):
    import os

    from workbench import config
    from workbench.data import load_rows

    rate(dataset_dir, "prefs", "preference", "a")
    path = dataset_dir / "uploads" / "prefs.jsonl"
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk pulled out")

    monkeypatch.setattr(config.os, "replace", crash)
    with pytest.raises(OSError):
        rate(dataset_dir, "prefs", "preference", "b")
    monkeypatch.setattr(config.os, "replace", os.replace)
    assert path.read_bytes() == before
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".prefs.jsonl.")]  # no temp left
    assert len(load_rows(dataset_dir, ["prefs"])[0]) == 1


def test_rated_pairs_train_a_reward_model(dataset_dir, tiny_model_dir, tmp_path):
    from workbench.config import from_dict
    from workbench.preference import RewardModel
    from workbench.train import run

    for i in range(4):
        rate(
            dataset_dir, "prefs", "preference", "a" if i % 2 else "b", answers=("4", "fish") if i % 2 else ("fish", "4")
        )
    cfg = from_dict(
        {
            "model_name_or_path": str(tiny_model_dir),
            "dataset": "prefs",
            "dataset_dir": str(dataset_dir),
            "stage": "rm",
            "max_steps": 2,
            "logging_steps": 1,
            "per_device_train_batch_size": 2,
            "cutoff_len": 64,
            "lora_rank": 4,
        }
    )
    run(cfg, tmp_path / "rm", echo=False)
    assert isinstance(RewardModel(tmp_path / "rm").score("What is 2+2?", "4"), float)


def test_workbench_chat_collects_ratings_with_the_same_verdicts(dataset_dir, tiny_model_dir):
    from workbench.data import load_rows

    out = run_cli(
        "chat",
        "--model",
        str(tiny_model_dir),
        "--prompt",
        "Hello?",
        "--max-new-tokens",
        "4",
        "--ratings",
        "cli_kto",
        "--rate",
        "down",
        "--dataset-dir",
        str(dataset_dir),
    )
    assert out.returncode == 0, out.stderr
    assert "cli_kto holds 1 ratings" in out.stderr
    rows, _ = load_rows(dataset_dir, ["cli_kto"])
    assert rows[0]["label"] is False and rows[0]["messages"][-1]["content"] == "Hello?"


def test_the_chat_tab_buttons_call_the_core_and_show_the_count(dataset_dir, tmp_path):
    """The A-is-better button's handler, as the page calls it, appends a row and shows the count."""
    from workbench.data import load_rows
    from workbench.ui.app import create_app

    app = create_app(lang="en", saves=tmp_path / "saves", dataset_dir=str(dataset_dir), allow_local_models=True)
    button = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "chat-rate-a")
    handler = next(f for f in app.fns.values() if any(t[0] == button._id for t in f.targets))
    pane_a = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]
    pane_b = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "fish"}]
    settings = ["", 32, 0.0, 0.9, 50, 1.0, 7]
    out = handler.fn("tab_prefs", "preference", "", "en", pane_a, pane_b, "base:tiny", "run-1", True, *settings)
    assert "1 ratings" in out[1] and "tab_prefs" in out[1], out
    rows, _ = load_rows(dataset_dir, ["tab_prefs"])
    assert (rows[0]["chosen"], rows[0]["rejected"]) == ("4", "fish")
    raw = json.loads((dataset_dir / "uploads" / "tab_prefs.jsonl").read_text())
    assert raw["model_a"] == "base:tiny" and raw["model_b"] == "run-1" and raw["settings"]["seed"] == 7
    # a thumbs verdict on a pairs dataset is refused with the reason, nothing written
    thumbs = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "chat-rate-up")
    handler = next(f for f in app.fns.values() if any(t[0] == thumbs._id for t in f.targets))
    out = handler.fn("tab_prefs", "preference", "", "en", pane_a, pane_b, "base:tiny", "run-1", False, *settings)
    assert "KTO" in out[1]
    assert len(load_rows(dataset_dir, ["tab_prefs"])[0]) == 1
