"""Metrics against values worked out by hand on small fixed inputs (English and Chinese)."""

import math

import pytest

from workbench.evaluate import (
    EvalError,
    bleu,
    classification_metrics,
    exact_match,
    generation_metrics,
    match_label,
    rouge_per_row,
    score_tokens,
)


def test_exact_match_ignores_whitespace_only():
    preds = ["2021-03-05", "  hello   world ", "a", "Hello world"]
    refs = ["2021-03-05", "hello world", "b", "hello world"]
    assert exact_match(preds, refs) == pytest.approx(2 / 4)


def test_rouge_english_by_hand():
    # pred 3 tokens, ref 6; unigram overlap 3 → P 1, R 1/2; bigram overlap 2 of 2 and 5; LCS 3
    row = rouge_per_row(["The cat sat"], ["the cat sat on the mat"])[0]
    assert row["rouge1"] == pytest.approx(2 / 3)
    assert row["rouge2"] == pytest.approx(2 * 1 * 0.4 / 1.4)
    assert row["rougeL"] == pytest.approx(2 / 3)


def test_rouge_chinese_is_scored_per_character():
    assert score_tokens("我爱北京 ok") == ["我", "爱", "北", "京", "ok"]
    row = rouge_per_row(["我爱北京"], ["我爱上海"])[0]
    assert row["rouge1"] == pytest.approx(0.5)  # 我, 爱 of 4 characters each
    assert row["rouge2"] == pytest.approx(1 / 3)  # 我爱 of 3 bigrams each
    assert row["rougeL"] == pytest.approx(0.5)


def test_bleu_english_by_hand():
    # clipped n-gram precisions 5/6, 3/5, 2/4, 1/3; equal lengths so no brevity penalty
    expected = 100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert bleu(["the cat sat on the mat"], ["the cat sat on a mat"]) == pytest.approx(expected, abs=0.01)
    assert bleu(["same words here ok"], ["same words here ok"]) == pytest.approx(100.0)


def test_bleu_chinese_uses_characters():
    # 4 of 4 characters right at every order, brevity penalty exp(1 - 7/4)
    expected = 100 * math.exp(1 - 7 / 4)
    assert bleu(["我爱北京"], ["我爱北京天安门"]) == pytest.approx(expected, abs=0.01)


def test_generation_metrics_bundle():
    metrics = generation_metrics(["2021-03-05", "1999-12-31"], ["2021-03-05", "1999-12-30"])
    assert metrics["exact_match"] == 0.5
    assert 0 < metrics["rougeL"] < 1 and 0 < metrics["bleu"] < 100
    with pytest.raises(EvalError, match="1 predictions for 2 references"):
        generation_metrics(["x"], ["x", "y"])


def test_classification_by_hand():
    refs = ["a", "a", "b", "b", "c"]
    preds = ["a", "b", "b", "b", "banana"]
    m = classification_metrics(preds, refs)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["per_label"]["a"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert m["per_label"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["per_label"]["c"]["f1"] == 0.0
    assert m["precision"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx((2 / 3 + 0.8 + 0) / 3)
    assert m["labels"] == ["a", "b", "c", "(other)"]
    assert m["confusion_matrix"] == [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 0, 1]]


def test_classification_chinese_labels_and_matching():
    labels = ["正面", "负面"]
    assert match_label("正面。", labels) == "正面"
    assert match_label("Positive!", ["positive", "negative"]) == "positive"
    m = classification_metrics(
        [match_label(p, labels) for p in ["正面", "负面", "负面"]], ["正面", "正面", "负面"], labels
    )
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0]]


def test_unknown_reference_label_is_named():
    with pytest.raises(EvalError, match="'z'"):
        classification_metrics(["a"], ["z"], ["a", "b"])


def _result(target, outputs, refs):
    from workbench.evaluate import EvalResult, normalize_text

    per_row = rouge_per_row(outputs, refs)
    rows = [
        {
            "prompt": f"p{i}",
            "reference": r,
            "prediction": o,
            "exact": normalize_text(o) == normalize_text(r),
            "rougeL": s["rougeL"],
        }
        for i, (o, r, s) in enumerate(zip(outputs, refs, per_row))
    ]
    return EvalResult(target, "d", "test", len(refs), generation_metrics(outputs, refs), rows)


def test_compare_marks_improved_and_worse_rows():
    from workbench.evaluate import Forgetting, compare

    refs = ["2021-03-05", "1999-12-31", "2000-01-01", "今天 是 晴天"]
    base = _result("base:m", ["March 5", "1999-12-31", "2000-01-01", "今天"], refs)
    tuned = _result("run", ["2021-03-05", "1999-12-30", "2000-01-01", "今天 是"], refs)
    result = compare(base, tuned)
    assert [r["change"] for r in result.rows] == ["improved", "worse", "same", "improved"]
    assert (result.improved, result.worse) == (2, 1)
    assert result.delta["exact_match"] == pytest.approx(0.0)  # one row gained, one lost
    assert result.rows[0]["base"] == "March 5" and result.rows[0]["tuned"] == "2021-03-05"
    with pytest.raises(EvalError, match="different rows"):
        compare(base, _result("run", ["x"], ["y"]))
    forgot = Forgetting(before=10.0, after=12.0, threshold=15.0)
    assert forgot.change_percent == pytest.approx(20.0) and forgot.warning
    assert not Forgetting(10.0, 11.0, 15.0).warning
