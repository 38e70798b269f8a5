"""The data path of a run: registry → rows → the exact tokens and loss mask."""

import pytest

from workbench.config import RunConfig
from workbench.data import IGNORE_INDEX, DataError, load_rows, load_splits, split_rows, tokenize_rows
from workbench.data.registry import SHIPPED_DIR
from workbench.models import load_tokenizer

from conftest import SAMPLES, needs_samples


@pytest.fixture(scope="module")
def tokenizer(default_model_dir):
    return load_tokenizer(str(default_model_dir))


def trained_text(tokenizer, example):
    return tokenizer.decode([t for t, label in zip(example["input_ids"], example["labels"]) if label != IGNORE_INDEX])


def test_identity_placeholders_are_filled():
    rows, _ = load_rows(SHIPPED_DIR, ["identity"], {"name": "Ada", "author": "Lab X"})
    text = " ".join(m["content"] for r in rows for m in r["messages"])
    assert "Ada" in text and "Lab X" in text and "{{" not in text


def test_loss_is_on_assistant_replies_only(tokenizer):
    cfg = RunConfig(dataset="identity", dataset_dir=str(SHIPPED_DIR), identity_name="Ada", identity_author="Lab X")
    rows, _ = load_rows(cfg.dataset_dir, ["identity"], {"name": "Ada", "author": "Lab X"})
    examples, stats = tokenize_rows(tokenizer, rows[:1], cfg)
    reply = rows[0]["messages"][-1]["content"]
    assert trained_text(tokenizer, examples[0]) == reply + "<|im_end|>\n"
    assert stats.trainable_tokens < stats.tokens


def test_train_on_prompt_trains_everything(tokenizer):
    cfg = RunConfig(dataset="identity", dataset_dir=str(SHIPPED_DIR), train_on_prompt=True)
    rows, _ = load_rows(cfg.dataset_dir, ["identity"])
    examples, _ = tokenize_rows(tokenizer, rows[:1], cfg)
    assert all(label != IGNORE_INDEX for label in examples[0]["labels"])


@needs_samples
def test_multi_turn_sharegpt_roles_are_mapped_and_every_reply_trained(tokenizer):
    rows, _ = load_rows(SAMPLES, ["glaive_toolcall_en_demo"])
    roles = {m["role"] for r in rows for m in r["messages"]}
    assert roles <= {"system", "user", "assistant", "tool"}, roles
    cfg = RunConfig(dataset="glaive_toolcall_en_demo", dataset_dir=str(SAMPLES), cutoff_len=4096)
    row = next(r for r in rows if sum(m["role"] == "assistant" for m in r["messages"]) >= 2)
    examples, _ = tokenize_rows(tokenizer, [row], cfg)
    text = trained_text(tokenizer, examples[0])
    for message in row["messages"]:
        if message["role"] == "assistant":
            assert message["content"] in text
        elif message["role"] == "user":
            assert message["content"] not in text


def test_truncation_that_removes_every_reply_drops_the_row_and_counts_it(tokenizer):
    cfg = RunConfig(dataset="identity", dataset_dir=str(SHIPPED_DIR), cutoff_len=8)
    rows, _ = load_rows(cfg.dataset_dir, ["identity"])
    examples, stats = tokenize_rows(tokenizer, rows[:5], cfg)
    assert examples == [] and stats.dropped == 5 and stats.truncated == 5


def test_splits_are_deterministic_and_disjoint():
    rows = [{"kind": "text", "text": str(i)} for i in range(100)]
    a = split_rows(rows, 0.1, 0.2, seed=7)
    b = split_rows(rows, 0.1, 0.2, seed=7)
    assert a.counts() == {"train": 70, "validation": 10, "test": 20}
    assert [r["text"] for r in a.test] == [r["text"] for r in b.test]
    seen = [r["text"] for r in a.train + a.validation + a.test]
    assert sorted(seen) == sorted(r["text"] for r in rows)


def test_missing_dataset_is_a_clear_error():
    with pytest.raises(DataError, match="dataset 'nope' is not registered"):
        load_splits(RunConfig(dataset="nope", dataset_dir=str(SHIPPED_DIR)))


def test_stage_and_data_kind_must_match():
    with pytest.raises(DataError, match="stage 'dpo' needs preference rows"):
        load_splits(RunConfig(dataset="identity", dataset_dir=str(SHIPPED_DIR), stage="dpo"))
