"""Data: files → canonical rows → train/validation/test splits → tokenized examples.

Public entry points:
  load_rows(dataset_dir, names, placeholders)   canonical rows (+ held-out test rows) of datasets
  split_rows(rows, val_size, test_size, seed)    deterministic splits
  load_splits(cfg)                               the splits a run config means
  tokenize_rows(tokenizer, rows, cfg)            examples + statistics for a stage
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from .formats import (
    FORMATS,
    KIND_OF_FORMAT,
    STAGE_KINDS,
    apply_column_map,
    detect_format,
    entry_format,
    normalize,
    parse_column_map,
)
from .readers import MAX_UPLOAD_MB, TEXT_SPLITS, DataError, check_size, read_records
from .registry import DatasetEntry, get_entry, load_registry, local_dataset_names, register_dataset, register_upload
from .templates import (
    IGNORE_INDEX,
    chat_template_for,
    conversation_segments,
    prompt_and_answer,
    render,
    tokenize_segments,
    tokenize_text,
)

__all__ = [
    "DataError",
    "DatasetEntry",
    "FORMATS",
    "IGNORE_INDEX",
    "Splits",
    "TokenStats",
    "detect_format",
    "get_entry",
    "load_registry",
    "load_rows",
    "load_splits",
    "local_dataset_names",
    "read_records",
    "register_dataset",
    "split_rows",
    "tokenize_rows",
    "chat_template_for",
    "render",
    "normalize",
    "entry_format",
    "KIND_OF_FORMAT",
    "read_file",
    "add_dataset",
    "parse_column_map",
    "TEXT_SPLITS",
    "MAX_UPLOAD_MB",
    "STAGE_KINDS",
    "check_datasets",
    "refuse_media",
]


def placeholders_of(cfg) -> dict[str, str]:
    return {"name": cfg.identity_name, "author": cfg.identity_author}


def load_dataset_file(
    dataset_dir,
    name: str,
    placeholders: dict | None = None,
    fmt: str | None = None,
    sample: int | None = None,
    totals: dict | None = None,
) -> tuple[list[dict], list[dict]]:
    """(rows, held-out test rows) of one registered dataset (the first `sample` of each when
    given, their whole counts in `totals`)."""
    entry = get_entry(dataset_dir, name)
    rows, fmt = _read_entry_file(entry.path(dataset_dir), entry, fmt, placeholders, sample, totals)
    test_rows: list[dict] = []
    test_path = entry.test_path(dataset_dir)
    if test_path is not None:
        test_rows, _ = _read_entry_file(test_path, entry, fmt, placeholders, sample, totals)
    return rows, test_rows


MEDIA_COLUMNS = ("images", "videos", "audios")


def refuse_media(entry: DatasetEntry, records: list[dict] | None = None, where: str = "") -> None:
    """Rows with images, videos or audio would train as text with their placeholders left in:
    refuse them, naming the column."""
    named = [c for c in MEDIA_COLUMNS if c in entry.columns]
    if records:
        named += [
            c for c in MEDIA_COLUMNS if c not in named and any(r.get(c) for r in records[:50] if isinstance(r, dict))
        ]
    if named:
        raise DataError(
            f"dataset '{entry.name}' has {'/'.join(named)} columns: multimodal "
            f"(image, video, audio) training is not supported by this project; "
            f"use a text-only dataset",
            where or None,
        )


def check_datasets(cfg) -> None:
    """Every dataset a config names resolves to a local file (hub-only entries and media
    datasets are refused here, before a run folder exists)."""
    for name in cfg.datasets() + eval_dataset_names(cfg):
        entry = get_entry(cfg.dataset_dir, name)
        refuse_media(entry)
        path = entry.path(cfg.dataset_dir)
        if not path.exists():
            raise DataError(f"dataset '{name}': its file {path} does not exist")


def eval_dataset_names(cfg) -> list[str]:
    return [d.strip() for d in (getattr(cfg, "eval_dataset", "") or "").split(",") if d.strip()]


def _read_entry_file(
    path,
    entry: DatasetEntry,
    fmt: str | None,
    placeholders: dict | None,
    sample: int | None = None,
    totals: dict | None = None,
):
    records = clip_long_texts(read_records(path, entry.text_split, sample, totals), sample)
    refuse_media(entry, records, str(path))
    records = apply_column_map(records, entry.column_map, str(path))
    fmt = fmt or entry_format(entry, records, str(path))
    return normalize(records, entry, fmt, str(path), placeholders), fmt


# a preview's sample clips texts longer than this (far past any cutoff length in tokens), so a
# single 10 MB row previews as fast as a short one; registering and training read them whole
PREVIEW_TEXT_CHARS = 50_000


def clip_long_texts(records: list, sample: int | None):
    """Records of a preview sample with over-long string fields clipped (None: unchanged)."""
    if sample is None:
        return records

    def clip(value):
        if isinstance(value, str):
            return value[:PREVIEW_TEXT_CHARS]
        if isinstance(value, list):
            return [clip(v) for v in value]
        if isinstance(value, dict):
            return {k: clip(v) for k, v in value.items()}
        return value

    return [clip(r) for r in records]


def read_file(
    path,
    fmt: str | None = None,
    column_map: str | dict | None = None,
    text_split: str = "auto",
    placeholders: dict | None = None,
    max_mb: float | None = None,
    sample: int | None = None,
    totals: dict | None = None,
) -> tuple[list[dict], str]:
    """(canonical rows, format) of a file that is not registered; every row is checked.

    fmt None detects the format; column_map renames file columns to standard ones."""
    path = Path(path)
    if fmt and fmt not in FORMATS:
        raise DataError(f"unknown format '{fmt}'; known: {', '.join(FORMATS)}", str(path))
    if text_split not in TEXT_SPLITS:
        raise DataError(f"text split must be one of {', '.join(TEXT_SPLITS)}, got {text_split!r}", str(path))
    if max_mb is not None and path.is_file():
        check_size(path, max_mb)
    entry = DatasetEntry(name=path.stem, format=fmt, text_split=text_split, column_map=parse_column_map(column_map))
    records = clip_long_texts(read_records(path, text_split, sample, totals), sample)
    records = apply_column_map(records, entry.column_map, str(path))
    fmt = fmt or detect_format(records, str(path))
    return normalize(records, entry, fmt, str(path), placeholders), fmt


def add_dataset(
    dataset_dir,
    name: str,
    path,
    fmt: str | None = None,
    column_map: str | dict | None = None,
    text_split: str = "auto",
    overwrite: bool = False,
    max_mb: float = MAX_UPLOAD_MB,
    description: str = "",
) -> tuple[str, int]:
    """Check every row of a file, then copy and register it (survives restarts).

    Returns (format, row count). On any problem DataError is raised and nothing is written."""
    from .registry import check_name

    check_name(dataset_dir, name, overwrite)
    rows, fmt = read_file(path, fmt, column_map, text_split, max_mb=max_mb)
    entry = {"format": fmt, "text_split": text_split}
    mapping = parse_column_map(column_map)
    if mapping:
        entry["column_map"] = mapping
    entry["description"] = description or f"uploaded from {Path(path).name}"
    register_upload(dataset_dir, name, path, entry, overwrite)
    return fmt, len(rows)


def load_rows(
    dataset_dir,
    names: list[str],
    placeholders: dict | None = None,
    max_samples: int | None = None,
    sample: int | None = None,
    totals: dict | None = None,
) -> tuple[list[dict], list[dict]]:
    rows, test_rows = [], []
    for name in names:
        these, tests = load_dataset_file(dataset_dir, name, placeholders, sample=sample, totals=totals)
        if max_samples:
            these = these[:max_samples]
        for row in these + tests:
            row["dataset"] = name
        rows += these
        test_rows += tests
    kinds = {r["kind"] for r in rows}
    if len(kinds) > 1:
        raise DataError(f"datasets {', '.join(names)} mix row kinds {sorted(kinds)}; mix only datasets of one kind")
    return rows, test_rows


def _count(size: float, total: int) -> int:
    return int(round(size * total)) if 0 < size < 1 else int(size)


@dataclass
class Splits:
    train: list[dict]
    validation: list[dict]
    test: list[dict]

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def split_rows(
    rows: list[dict], val_size: float, test_size: float, seed: int, fixed_test: list[dict] | None = None
) -> Splits:
    """Shuffle once with the seed, then cut test, validation and train, in that order.

    The same rows, sizes and seed always give the same splits, so evaluation later finds
    exactly the rows that were held out. A dataset's own test file replaces the test cut."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_test = 0 if fixed_test else _count(test_size, len(rows))
    n_val = _count(val_size, len(rows))
    if n_test + n_val >= len(rows):
        raise DataError(
            f"val_size and test_size take {n_val + n_test} of {len(rows)} rows; none would be left to train on"
        )
    test = [rows[i] for i in order[:n_test]]
    validation = [rows[i] for i in order[n_test : n_test + n_val]]
    train = [rows[i] for i in sorted(order[n_test + n_val :])]
    return Splits(train, validation, fixed_test if fixed_test else test)


# what a row of each kind is made of, for the message when a stage gets the wrong kind
KIND_COLUMNS = {
    "preference": "a prompt and two answers in columns 'chosen' and 'rejected'",
    "kto": "a prompt, a 'completion' and a true/false 'label'",
}


def load_splits(cfg) -> Splits:
    rows, fixed_test = load_rows(cfg.dataset_dir, cfg.datasets(), placeholders_of(cfg), cfg.max_samples)
    _check_kind(cfg, rows, cfg.dataset)
    splits = split_rows(rows, cfg.val_size, cfg.test_size, cfg.seed, fixed_test)
    names = eval_dataset_names(cfg)
    if names:  # named validation datasets replace a cut of the training rows
        extra, _ = load_rows(cfg.dataset_dir, names, placeholders_of(cfg), cfg.max_samples)
        _check_kind(cfg, extra, cfg.eval_dataset)
        splits.validation = splits.validation + extra
    return splits


def _check_kind(cfg, rows: list[dict], named: str) -> None:
    allowed = STAGE_KINDS[cfg.stage]
    kind = rows[0]["kind"]
    if kind not in allowed:
        needs = "; ".join(f"{k} rows have {KIND_COLUMNS[k]}" for k in allowed if k in KIND_COLUMNS)
        raise DataError(
            f"stage '{cfg.stage}' needs {' or '.join(allowed)} rows, but dataset "
            f"'{named}' holds {kind} rows" + (f" ({needs})" if needs else "")
        )


@dataclass
class TokenStats:
    rows: int = 0
    tokens: int = 0
    trainable_tokens: int = 0
    truncated: int = 0
    dropped: int = 0  # rows with no trainable token left after truncation
    lengths: list[int] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "rows": self.rows,
            "tokens": self.tokens,
            "trainable_tokens": self.trainable_tokens,
            "truncated": self.truncated,
            "dropped": self.dropped,
            "max_length": max(self.lengths, default=0),
            "mean_length": round(sum(self.lengths) / len(self.lengths), 1) if self.lengths else 0,
        }


def tokenize_rows(tokenizer, rows: list[dict], cfg, cutoff_len: int | None = None) -> tuple[list[dict], TokenStats]:
    """Examples ready for the stage's trainer, and what tokenization did to the rows."""
    cutoff = cutoff_len or cfg.cutoff_len
    template, _ = chat_template_for(tokenizer, cfg.template, getattr(cfg, "enable_thinking", True))
    stats = TokenStats()
    examples = []
    for row in rows:
        stats.rows += 1
        example = _tokenize_row(tokenizer, row, cfg, template, cutoff, stats)
        if example is not None:
            examples.append(example)
    return examples, stats


def with_default_system(messages: list[dict], system: str) -> list[dict]:
    """The conversation with `system` as its system message when it has none."""
    if not system or (messages and messages[0]["role"] == "system"):
        return messages
    return [{"role": "system", "content": system}] + messages


def _tokenize_row(tokenizer, row: dict, cfg, template: str, cutoff: int, stats: TokenStats):
    kind = row["kind"]
    if "messages" in row and getattr(cfg, "default_system", ""):
        row = {**row, "messages": with_default_system(row["messages"], cfg.default_system)}
    if cfg.stage in ("grpo", "rloo"):
        return _rl_example(tokenizer, row, template, cutoff, stats)
    if kind == "conversation" and cfg.stage != "pt":
        segments = conversation_segments(
            tokenizer,
            row["messages"],
            template,
            row.get("tools"),
            cfg.train_on_prompt,
            getattr(cfg, "mask_history", False),
        )
        tok = tokenize_segments(tokenizer, segments, cutoff)
        return _account(stats, tok, {"input_ids": tok.input_ids, "labels": tok.labels})
    if kind in ("text", "conversation"):  # pretraining: the conversation's text is the document
        text = row["text"] if kind == "text" else render(tokenizer, row["messages"], template, tools=row.get("tools"))
        # packing chunks documents later; cut only when not packing
        tok = tokenize_text(tokenizer, text, None if packing_enabled(cfg) else cutoff)
        return _account(stats, tok, {"input_ids": tok.input_ids, "labels": tok.labels})
    if kind == "preference":
        prompt, chosen = prompt_and_answer(tokenizer, row["messages"], row["chosen"], template)
        _, rejected = prompt_and_answer(tokenizer, row["messages"], row["rejected"], template)
        return _account_text(stats, tokenizer, cutoff, {"prompt": prompt, "chosen": chosen, "rejected": rejected})
    if kind == "kto":
        prompt, completion = prompt_and_answer(tokenizer, row["messages"], row["completion"], template)
        return _account_text(
            stats, tokenizer, cutoff, {"prompt": prompt, "completion": completion, "label": row["label"]}
        )
    if kind == "classification":
        return _account_text(stats, tokenizer, cutoff, {"text": row["text"], "label": row["label"]})
    raise DataError(f"unknown row kind {kind!r}")


def _rl_example(tokenizer, row: dict, template: str, cutoff: int, stats: TokenStats):
    """Stages grpo/rloo: the rendered prompt the policy answers, and the reference answer
    that rule rewards compare with (rows without a prompt are dropped)."""
    from ..reward_rules import prompt_of, reference_of

    turns = prompt_of(row)
    if not turns:
        stats.dropped += 1
        return None
    prompt = render(tokenizer, turns, template, add_generation_prompt=True, tools=row.get("tools"))
    return _account_text(stats, tokenizer, cutoff, {"prompt": prompt, "reference": reference_of(row) or ""})


def packing_enabled(cfg) -> bool:
    return cfg.packing if cfg.packing is not None else cfg.stage == "pt"


def _account(stats: TokenStats, tok, example: dict):
    stats.lengths.append(len(tok.input_ids))
    stats.tokens += len(tok.input_ids)
    stats.truncated += int(tok.truncated)
    if tok.trainable_tokens == 0:
        stats.dropped += 1
        return None
    stats.trainable_tokens += tok.trainable_tokens
    return example


def _account_text(stats: TokenStats, tokenizer, cutoff: int, example: dict):
    """Statistics for examples handed to trl as text (it tokenizes and truncates them)."""
    texts = [v for k, v in example.items() if k != "label" and isinstance(v, str)]
    length = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts[:2])
    stats.lengths.append(length)
    stats.tokens += length
    stats.trainable_tokens += length
    stats.truncated += int(length > cutoff)
    return example
