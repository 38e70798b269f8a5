"""Evaluation of real runs of the tiny model: saved results, before/after, forgetting, gap, CLI."""

import json

import pytest

from tests.conftest import run_cli
from workbench.data.registry import SHIPPED_DIR
from workbench.evaluate import (
    EvalError,
    Evaluator,
    before_after,
    evaluate,
    gap_analysis,
    load_comparison,
    load_result,
    saved_results,
)


@pytest.fixture(scope="module")
def evaluator(trained_lora_run):
    return Evaluator(root=trained_lora_run.parent, batch_size=4, max_new_tokens=12)


def test_evaluate_run_saves_metrics_and_predictions(trained_lora_run, evaluator):
    seen = []
    result = evaluate(
        "lora-run",
        "date_format",
        "test",
        evaluator,
        limit=6,
        progress=lambda done, total, what: seen.append((what, done, total)),
        dataset_dir=str(SHIPPED_DIR),
    )
    assert result.rows == 6 and len(result.predictions) == 6
    assert result.metrics["perplexity"] > 1 and result.metrics["loss"] > 0
    assert 0 <= result.metrics["exact_match"] <= 1 and "bleu" in result.metrics
    assert ("generate", 6, 6) in seen and any(w == "loss" for w, _, _ in seen)
    files = saved_results(trained_lora_run)
    assert trained_lora_run / "eval" / "date_format-test.json" in files
    again = load_result(trained_lora_run / "eval" / "date_format-test.json")
    assert again.metrics == pytest.approx(result.metrics)
    assert again.predictions[0]["reference"] == result.predictions[0]["reference"]


def test_before_after_and_forgetting(trained_lora_run, evaluator, tmp_path):
    reference = tmp_path / "ref.json"
    reference.write_text(
        json.dumps([{"text": "The sun rises in the east."}, {"text": "水是生命之源。"}], ensure_ascii=False),
        encoding="utf-8",
    )
    report = before_after("lora-run", "date_format", "test", evaluator, limit=4, reference=reference, threshold=0.0)
    assert len(report["rows"]) == 4
    row = report["rows"][0]
    assert set(row) >= {"prompt", "reference", "base", "tuned", "change"}
    assert report["improved"] + report["worse"] + report["same"] == 4
    assert report["base"].startswith("base:")
    forgot = report["forgetting"]
    assert forgot["perplexity_before"] > 1 and forgot["perplexity_after"] > 1
    # the tuned adapter changes the outputs, so perplexity moves; threshold 0 turns any rise into a warning
    assert forgot["perplexity_before"] != pytest.approx(forgot["perplexity_after"], rel=1e-6)
    assert forgot["warning"] == (forgot["change_percent"] > 0)
    assert load_comparison(trained_lora_run)["target"] == "lora-run"
    # the base is scored too, beside the run's result, in the base's own folder
    assert (trained_lora_run.parent / ".base").is_dir()


def test_gap_analysis_lists_failures(tiny_model_dir, evaluator):
    report = gap_analysis(f"base:{tiny_model_dir}", "date_format", evaluator, limit=3)
    assert report["split"] == "test"  # the default config holds no validation rows
    assert report["rows"] == 3 and report["failed"] == 3  # a random model gets none right
    assert report["failures"][0]["reference"][:2] in ("19", "20")


def test_bad_requests_are_named(evaluator):
    with pytest.raises(EvalError, match="no such run: nope"):
        evaluate("nope", "date_format", evaluator=evaluator)
    with pytest.raises(EvalError, match="no validation split"):
        evaluate("lora-run", "date_format", "validation", evaluator, dataset_dir=str(SHIPPED_DIR))
    with pytest.raises(EvalError, match="no test split"):
        evaluate("lora-run", "identity", "test", evaluator)


def test_cli_eval_base_and_errors(tiny_model_dir, tmp_path):
    done = run_cli(
        "eval",
        "--base",
        "--model",
        str(tiny_model_dir),
        "--dataset",
        "date_format",
        "--limit",
        "2",
        "--max-new-tokens",
        "4",
        "--saves",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == 2
    assert list(tmp_path.glob(".base/*/eval/date_format-test.json"))
    bad = run_cli("eval", "--run", "missing-run", "--saves", str(tmp_path))
    assert bad.returncode == 2 and "no such run: missing-run" in bad.stderr
    no_dataset = run_cli("eval", "--base", "--saves", str(tmp_path))
    assert no_dataset.returncode == 2 and "--base needs --dataset" in no_dataset.stderr


def test_experiments_views(trained_lora_run, evaluator, tmp_path):
    import shutil

    from workbench.experiments import config_diff, loss_curves, metrics_table, sample_gallery

    root = tmp_path / "saves"
    shutil.copytree(trained_lora_run, root / "a")
    shutil.copytree(trained_lora_run, root / "b")
    for run in ("a", "b"):  # evaluations saved by other tests in the shared run don't belong here
        shutil.rmtree(root / run / "eval", ignore_errors=True)
    cfg = (root / "b" / "config.yaml").read_text().replace("lora_rank: 4", "lora_rank: 2")
    (root / "b" / "config.yaml").write_text(cfg)
    curves = loss_curves(root, ["a", "b"])
    assert {p["run"] for p in curves} == {"a", "b"} and all(p["loss"] > 0 for p in curves)
    diff = config_diff(root, ["a", "b"])
    assert diff == [{"key": "lora_rank", "a": "4", "b": "2"}]
    evaluate("a", "date_format", "test", Evaluator(root=root, max_new_tokens=4), limit=2)
    table = metrics_table(root, ["a", "b"])
    assert [(r["run"], r["dataset"], r["rows"]) for r in table] == [("a", "date_format", 2)]
    gallery = sample_gallery(root, "a", ["Who are you?", "你是谁？"], Evaluator(root=root), max_new_tokens=4)
    assert [r["checkpoint"] for r in gallery["rows"]] == ["4", "4", "8", "8", "final", "final"]
    assert json.loads((root / "a" / "eval" / "gallery.json").read_text())["prompts"][1] == "你是谁？"


def test_classification_data_gets_accuracy_and_confusion_matrix(tiny_model_dir, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    rows = [
        {"text": f"review {i}: {'great' if i % 2 else '很差'}", "label": "positive" if i % 2 else "negative"}
        for i in range(6)
    ]
    (data_dir / "reviews.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    (data_dir / "dataset_info.json").write_text(
        json.dumps({"reviews": {"file_name": "reviews.json", "format": "classification"}}), encoding="utf-8"
    )
    result = evaluate(
        f"base:{tiny_model_dir}",
        "reviews",
        "test",
        Evaluator(root=tmp_path, max_new_tokens=4),
        dataset_dir=str(data_dir),
        cfg=_cfg(tiny_model_dir, test_size=4),
    )
    assert result.rows == 4
    matrix = result.classification["confusion_matrix"]
    assert result.classification["labels"] == ["negative", "positive", "(other)"]
    assert sum(map(sum, matrix)) == 4 and 0 <= result.metrics["accuracy"] <= 1 and "f1" in result.metrics


def _cfg(model, **keys):
    from workbench.config import RunConfig

    return RunConfig(model_name_or_path=str(model), **keys)
