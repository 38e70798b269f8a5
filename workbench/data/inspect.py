"""What a dataset looks like to the model: rows, the trained text with its loss mask, statistics."""
from __future__ import annotations

from dataclasses import dataclass

from . import IGNORE_INDEX, Splits, TokenStats, load_splits, tokenize_rows


@dataclass
class Inspection:
    splits: Splits
    stats: TokenStats
    kind: str

    def summary(self) -> dict:
        return {"kind": self.kind, "splits": self.splits.counts(), **self.stats.summary()}


def inspect(cfg, tokenizer) -> Inspection:
    splits = load_splits(cfg)
    _, stats = tokenize_rows(tokenizer, splits.train, cfg)
    return Inspection(splits, stats, splits.train[0]["kind"] if splits.train else "empty")


def loss_spans(tokenizer, example: dict) -> list[tuple[str, bool]]:
    """The example's text cut where loss starts and stops: [(text, carries_loss), ...]."""
    spans: list[tuple[str, bool]] = []
    ids, labels = example["input_ids"], example["labels"]
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or (labels[i] != IGNORE_INDEX) != (labels[start] != IGNORE_INDEX):
            text = tokenizer.decode(ids[start:i], skip_special_tokens=False)
            spans.append((text, labels[start] != IGNORE_INDEX))
            start = i
    return spans


def length_histogram(lengths: list[int], bins: int = 20) -> list[tuple[str, int]]:
    if not lengths:
        return []
    low, high = min(lengths), max(lengths)
    width = max(1, -(-(high - low + 1) // bins))
    counts: dict[int, int] = {}
    for length in lengths:
        bucket = (length - low) // width
        counts[bucket] = counts.get(bucket, 0) + 1
    return [(f"{low + b * width}-{low + (b + 1) * width - 1}", counts.get(b, 0))
            for b in range(max(counts) + 1)]
