"""Registering uploads (they survive a restart; a bad one changes nothing), LLaMA-Factory's
registry and sample files read unchanged, and `workbench data inspect|add` on the command line."""

import json
import shutil

import pytest

from workbench.config import RunConfig
from workbench.data import DataError, add_dataset, load_registry, load_rows, local_dataset_names, tokenize_rows
from workbench.data.inspect import example_spans, inspect
from workbench.data.registry import SHIPPED_DIR
from workbench.models import load_tokenizer

from conftest import SAMPLES, needs_samples, run_cli

SAMPLE_NAMES = [
    "identity",
    "alpaca_en_demo",
    "alpaca_zh_demo",
    "glaive_toolcall_en_demo",
    "dpo_en_demo",
    "kto_en_demo",
    "wiki_demo",
    "c4_demo",
]


@pytest.fixture(scope="module")
def tokenizer(default_model_dir):
    return load_tokenizer(str(default_model_dir))


@pytest.fixture()
def dataset_dir(tmp_path):
    """A copy of the shipped registry, so uploads land in a throwaway folder."""
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(SHIPPED_DIR / "dataset_info.json", folder)
    shutil.copy(SHIPPED_DIR / "identity.json", folder)
    return folder


@needs_samples
def test_every_llamafactory_sample_loads_and_tokenizes(tokenizer):
    assert set(SAMPLE_NAMES) <= set(local_dataset_names(SAMPLES))
    for name in SAMPLE_NAMES:
        rows, _ = load_rows(SAMPLES, [name], {"name": "Ada", "author": "Lab"})
        cfg = RunConfig(dataset=name, dataset_dir=str(SAMPLES), cutoff_len=256)
        result = inspect(cfg, tokenizer)
        assert result.stats.rows == len(rows) > 0 and result.stats.tokens > 0, name
        spans = example_spans(tokenizer, result.rows[0], result.cfg)
        assert any(tag == "loss" for _, tag in spans), name


@needs_samples
def test_the_openai_messages_sample_loads_by_path(tokenizer):
    cfg = RunConfig(cutoff_len=256, identity_name="Ada", identity_author="Lab")
    result = inspect(cfg, tokenizer, str(SAMPLES / "v1_sft_demo.jsonl"))
    assert result.format == "openai" and len(result.rows) == 500
    text = "".join(t for t, _ in example_spans(tokenizer, result.rows[0], result.cfg))
    assert "I am Ada" in text and "{{name}}" not in text


def test_uploads_survive_a_new_process_and_leave_the_shipped_registry_alone(dataset_dir, tmp_path):
    shipped = (dataset_dir / "dataset_info.json").read_bytes()
    source = tmp_path / "qa.csv"
    source.write_text("question,answer\n2+2?,4\n3+3?,6\n", encoding="utf-8")
    fmt, count = add_dataset(dataset_dir, "qa", source, column_map="instruction=question, output=answer")
    assert (fmt, count) == ("alpaca", 2)
    source.unlink()  # the registered copy, not the original, is what is read later
    assert (dataset_dir / "dataset_info.json").read_bytes() == shipped
    assert "qa" in local_dataset_names(dataset_dir) and "identity" in local_dataset_names(dataset_dir)
    # a fresh process (as after a restart) finds and reads it
    result = run_cli("data", "inspect", "qa", "--dataset-dir", str(dataset_dir), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["kind"] == "conversation" and summary["splits"]["train"] == 2
    assert summary["first_rows"][0] == {"user": "2+2?", "assistant": "4"}


def test_a_bad_upload_writes_nothing(dataset_dir, tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text('{"prompt": "a", "completion": "b"}\n', encoding="utf-8")
    add_dataset(dataset_dir, "good", good)
    before = {p.name: p.read_bytes() for p in (dataset_dir / "uploads").iterdir()}
    shipped = (dataset_dir / "dataset_info.json").read_bytes()
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="broken.jsonl, row 2, field 'completion': is missing"):
        add_dataset(dataset_dir, "broken", broken)
    with pytest.raises(DataError, match="good.jsonl: the file is 0.0 MB, over the 1e-05 MB upload limit"):
        add_dataset(dataset_dir, "big", good, max_mb=0.00001)
    for name, message in (
        ("identity", "is a shipped dataset"),
        ("good", "already registered"),
        ("../evil", "must start with a letter"),
    ):
        with pytest.raises(DataError, match=message):
            add_dataset(dataset_dir, name, good)
    assert {p.name: p.read_bytes() for p in (dataset_dir / "uploads").iterdir()} == before
    assert (dataset_dir / "dataset_info.json").read_bytes() == shipped
    assert set(load_registry(dataset_dir)) == set(json.loads(shipped)) | {"good"}
    add_dataset(dataset_dir, "good", broken.with_name("good.jsonl"), overwrite=True)  # replacing is explicit


def test_cli_add_and_inspect_a_file(dataset_dir, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("First note about {{name}}.\n\nSecond note.\n\nThird note.\n", encoding="utf-8")
    result = run_cli("data", "inspect", str(path), "--test-size", "1", "--rows", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "format:   text" in out and "train 2 · validation 0 · test 1" in out and "carry loss" in out
    assert "First note about Workbench Assistant." in out or "Second note." in out
    result = run_cli("data", "add", str(path), "--name", "notes", "--dataset-dir", str(dataset_dir))
    assert result.returncode == 0 and "registered 'notes' (text, 3 rows)" in result.stdout
    assert (dataset_dir / "uploads" / "notes.txt").is_file()


def test_cli_bad_input_exits_nonzero_with_the_message(dataset_dir, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[{"conversations": [{"from": "human", "value": "hi"}, {"from": "narrator", "value": "yo"}]}]')
    for args in (
        ("data", "inspect", str(path)),
        ("data", "add", str(path), "--name", "bad", "--dataset-dir", str(dataset_dir)),
    ):
        result = run_cli(*args)
        assert result.returncode == 1
        assert "bad.json, row 1, field 'conversations[1]': has unknown role 'narrator'" in result.stderr
    assert not (dataset_dir / "uploads").exists()


def test_train_on_prompt_and_cutoff_change_the_marked_text(tokenizer):
    rows, _ = load_rows(SHIPPED_DIR, ["identity"])
    cfg = RunConfig(cutoff_len=1024)
    tags = {tag for _, tag in example_spans(tokenizer, rows[0], cfg)}
    assert tags == {None, "loss"}
    assert {tag for _, tag in example_spans(tokenizer, rows[0], RunConfig(train_on_prompt=True))} == {"loss"}
    short = example_spans(tokenizer, rows[0], RunConfig(cutoff_len=8))
    assert short[-1][1] == "cut"
    _, stats = tokenize_rows(tokenizer, rows[:3], RunConfig(cutoff_len=8))
    assert stats.dropped == 3


def test_shipped_datasets_have_the_promised_shape():
    data = SHIPPED_DIR
    preference, _ = load_rows(data, ["preference"])
    assert len(preference) >= 100 and all(
        r["kind"] == "preference" and r["chosen"] != r["rejected"] for r in preference
    )
    assert sum(any("\u4e00" <= ch <= "\u9fff" for ch in r["messages"][-1]["content"]) for r in preference) >= 10
    text, _ = load_rows(data, ["pretrain_text"])
    assert len(text) >= 24 and all(r["kind"] == "text" and len(r["text"].split()) > 30 for r in text)
    sentiment, _ = load_rows(data, ["sentiment"])
    labels = {r["label"] for r in sentiment}
    assert len(sentiment) >= 180 and labels == {"positive", "negative", "neutral"}
    assert min(sum(r["label"] == label for r in sentiment) for label in labels) >= 50


def test_a_missing_file_is_not_mistaken_for_a_dataset_name(tokenizer, tmp_path):
    with pytest.raises(DataError, match="nothere.csv: file not found"):
        inspect(RunConfig(), tokenizer, str(tmp_path / "nothere.csv"))
    with pytest.raises(DataError, match="dataset 'nothere' is not registered"):
        inspect(RunConfig(dataset_dir=str(SHIPPED_DIR)), tokenizer, "nothere")
