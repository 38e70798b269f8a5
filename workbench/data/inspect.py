"""What a dataset looks like to the model: rows, the trained text with its loss mask, statistics.

Used by the Data tab and by `workbench data inspect`; nothing here imports the UI."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from . import (
    IGNORE_INDEX,
    STAGE_KINDS,
    DataError,
    Splits,
    TokenStats,
    load_rows,
    placeholders_of,
    read_file,
    split_rows,
    tokenize_rows,
)
from .templates import (
    chat_template_for,
    conversation_segments,
    prompt_and_answer,
    render,
    tokenize_segments,
    tokenize_text,
)

# the stage a dataset is inspected under when the chosen stage cannot read its rows
STAGE_FOR_KIND = {"conversation": "sft", "text": "pt", "preference": "dpo", "kto": "kto", "classification": "cls"}
UNLIMITED = 10**9


@dataclass
class Inspection:
    rows: list[dict]  # every row, each with its "split"
    splits: Splits
    stats: TokenStats  # of the train split, as the trainer will see it
    kind: str
    format: str | None
    cfg: object  # the config the statistics were taken under (its stage fits the rows)
    sampled: tuple[int, int] | None = None  # (rows read, rows in the files) when only a sample was read

    def summary(self) -> dict:
        return {
            "kind": self.kind,
            "format": self.format,
            "stage": self.cfg.stage,
            "cutoff_len": self.cfg.cutoff_len,
            "splits": self.splits.counts(),
            **self.stats.summary(),
            "sampled": self.sampled,
        }


def fitting_config(cfg, kind: str):
    """cfg itself when its stage reads `kind` rows, else a copy with the stage that does."""
    if kind in STAGE_KINDS.get(cfg.stage, ()):
        return cfg
    return dataclasses.replace(cfg, stage=STAGE_FOR_KIND[kind])


def load_source(
    cfg,
    source: str | None = None,
    fmt: str | None = None,
    column_map=None,
    text_split: str = "auto",
    sample: int | None = None,
    totals: dict | None = None,
) -> tuple[list[dict], list[dict], str | None]:
    """(rows, fixed test rows, format) of a registered dataset (cfg.dataset) or of a file;
    with `sample`, only the first rows of each file (whole counts in `totals`)."""
    placeholders = placeholders_of(cfg)
    if source and is_file_source(cfg.dataset_dir, source):
        rows, fmt = read_file(source, fmt, column_map, text_split, placeholders, sample=sample, totals=totals)
        return rows[: cfg.max_samples] if cfg.max_samples else rows, [], fmt
    names = [source] if source else cfg.datasets()
    rows, test_rows = load_rows(cfg.dataset_dir, names, placeholders, cfg.max_samples, sample, totals)
    return rows, test_rows, registered_format(cfg.dataset_dir, names)


def registered_format(dataset_dir, names: list[str]) -> str | None:
    """The format a single registered dataset declares or LLaMA-Factory's formatting implies."""
    if len(names) != 1:
        return None
    from .formats import entry_format
    from .registry import get_entry

    entry = get_entry(dataset_dir, names[0])
    try:
        return entry_format(entry, [{}])
    except DataError:
        pass
    # nothing declared (LLaMA-Factory's entries without `formatting`): what the rows show,
    # alpaca for instruction/input/output rows, exactly as training reads them
    try:
        from .formats import apply_column_map
        from .readers import read_records

        path = entry.path(dataset_dir)
        records = apply_column_map(read_records(path, entry.text_split)[:20], entry.column_map, str(path))
        return entry_format(entry, records, str(path))
    except (DataError, OSError, TypeError):
        return None


def is_file_source(dataset_dir, source: str) -> bool:
    """A path to read (an existing file, or a name with a data file's suffix that is not a
    registered dataset, so that a typo reads as 'file not found'), not a registered name."""
    from .readers import SUPPORTED_SUFFIXES
    from .registry import load_registry

    if Path(source).is_file():
        return True
    return Path(source).suffix.lower() in SUPPORTED_SUFFIXES and source not in load_registry(dataset_dir)


def inspect(
    cfg,
    tokenizer,
    source: str | None = None,
    fmt: str | None = None,
    column_map=None,
    text_split: str = "auto",
    sample: int | None = None,
) -> Inspection:
    """What training would see; with `sample`, statistics of the first `sample` rows of each
    file only (a preview that stays quick on any file), labelled as such."""
    totals: dict = {}
    rows, fixed_test, fmt = load_source(cfg, source, fmt, column_map, text_split, sample, totals)
    kind = rows[0]["kind"]
    cfg = fitting_config(cfg, kind)
    splits = split_rows(rows, cfg.val_size, cfg.test_size, cfg.seed, fixed_test)
    for name in ("train", "validation", "test"):
        for row in getattr(splits, name):
            row["split"] = name
    _, stats = tokenize_rows(tokenizer, splits.train, cfg)
    total = sum(totals.values())
    sampled = (
        (len(rows) + len(fixed_test), total) if sample is not None and total > len(rows) + len(fixed_test) else None
    )
    return Inspection(rows + fixed_test, splits, stats, kind, fmt, cfg, sampled)


# ---- the exact text of one example ---------------------------------------------------------
# each span is (text, tag): tag "loss" carries loss, None does not, "cut" lies past the cutoff
# length and is never seen, "rejected" is the answer a preference pair ranks lower


def example_spans(tokenizer, row: dict, cfg) -> list[tuple[str, str | None]]:
    template, _ = chat_template_for(tokenizer, cfg.template, cfg.enable_thinking)
    kind = row["kind"]
    if kind == "conversation" and cfg.stage != "pt":
        segments = conversation_segments(
            tokenizer, row["messages"], template, row.get("tools"), cfg.train_on_prompt, cfg.mask_history
        )
        tok = tokenize_segments(tokenizer, segments, UNLIMITED)
        return token_spans(tokenizer, tok.input_ids, tok.labels, cfg.cutoff_len)
    if kind in ("text", "conversation"):
        text = row["text"] if kind == "text" else render(tokenizer, row["messages"], template, tools=row.get("tools"))
        tok = tokenize_text(tokenizer, text, None)
        from . import packing_enabled

        cutoff = UNLIMITED if packing_enabled(cfg) else cfg.cutoff_len
        return token_spans(tokenizer, tok.input_ids, tok.labels, cutoff)
    if kind == "preference":
        prompt, chosen = prompt_and_answer(tokenizer, row["messages"], row["chosen"], template)
        _, rejected = prompt_and_answer(tokenizer, row["messages"], row["rejected"], template)
        return [
            (prompt, "loss" if cfg.train_on_prompt else None),
            (chosen, "loss"),
            ("\n", None),
            (rejected, "rejected"),
        ]
    if kind == "kto":
        prompt, completion = prompt_and_answer(tokenizer, row["messages"], row["completion"], template)
        return [(prompt, None), (completion, "loss" if row["label"] else "rejected")]
    if kind == "classification":
        return [(row["text"], None), (f"  → {row['label']}", "loss")]
    raise DataError(f"unknown row kind {kind!r}")


def token_spans(tokenizer, ids: list[int], labels: list[int], cutoff: int) -> list[tuple[str, str | None]]:
    """Consecutive tokens with the same tag, decoded together."""

    def tag(i: int) -> str | None:
        if i >= cutoff:
            return "cut"
        return "loss" if labels[i] != IGNORE_INDEX else None

    spans: list[tuple[str, str | None]] = []
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or tag(i) != tag(start):
            spans.append((tokenizer.decode(ids[start:i], skip_special_tokens=False), tag(start)))
            start = i
    return spans


def loss_spans(tokenizer, example: dict) -> list[tuple[str, bool]]:
    """A tokenized example's text cut where loss starts and stops: [(text, carries_loss), ...]."""
    return [
        (text, tag == "loss")
        for text, tag in token_spans(tokenizer, example["input_ids"], example["labels"], UNLIMITED)
    ]


# ---- statistics ------------------------------------------------------------------------------


def length_histogram(lengths: list[int], bins: int = 20) -> list[tuple[str, int]]:
    if not lengths:
        return []
    low, high = min(lengths), max(lengths)
    width = max(1, -(-(high - low + 1) // bins))
    counts: dict[int, int] = {}
    for length in lengths:
        bucket = (length - low) // width
        counts[bucket] = counts.get(bucket, 0) + 1

    def label(b: int) -> str:
        start = low + b * width
        return str(start) if width == 1 else f"{start}-{start + width - 1}"

    return [(label(b), counts.get(b, 0)) for b in range(max(counts) + 1)]


def row_preview(row: dict) -> dict[str, str]:
    """One normalized row as short named text columns (for tables and the terminal)."""
    out = {}
    if "messages" in row:
        for message in row["messages"]:
            key = message["role"]
            out[key] = f"{out[key]} ⏎ {message['content']}" if key in out else message["content"]
    for key in ("text", "chosen", "rejected", "completion", "label"):
        if key in row:
            out[key] = str(row[key])
    return out
