"""Detect a dataset's format and normalize its rows into one canonical shape.

Canonical row (a dict); which keys are set depends on the kind:
  kind "conversation":   messages [{role, content, (train: bool)}], tools
  kind "preference":     messages (the prompt turns), chosen, rejected       (DPO, RM)
  kind "kto":            messages (prompt turns), completion, label (bool)   (KTO)
  kind "text":           text                                                (pretraining)
  kind "classification": text, label (str)                                   (task head)
Roles are always system / user / assistant / tool. ShareGPT's human/gpt/function_call/
observation are mapped here, so they never reach a chat template as literal role names.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .readers import DataError
from .registry import DatasetEntry

FORMATS = ("alpaca", "sharegpt", "openai", "prompt_completion", "preference", "kto", "text", "classification")
KIND_OF_FORMAT = {
    "alpaca": "conversation",
    "sharegpt": "conversation",
    "openai": "conversation",
    "prompt_completion": "conversation",
    "preference": "preference",
    "kto": "kto",
    "text": "text",
    "classification": "classification",
}
# which canonical kinds each training stage can consume
STAGE_KINDS = {
    "sft": ("conversation",),
    "pt": ("text", "conversation"),
    "dpo": ("preference",),
    "rm": ("preference",),
    "kto": ("kto",),
    "cls": ("classification",),
    # online RL samples its own answers: any rows with a prompt (and a reference)
    "grpo": ("conversation", "preference", "kto"),
    "rloo": ("conversation", "preference", "kto"),
}

SHAREGPT_DEFAULT_TAGS = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "observation_tag": "observation",
    "function_tag": "function_call",
    "system_tag": "system",
}
OPENAI_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "observation_tag": "tool",
    "function_tag": "function_call",
    "system_tag": "system",
}

# role names found in real conversation dumps (ShareGPT exports, OpenAssistant, Gemini), besides
# the ones a registry entry's tags declare
ROLE_ALIASES = {
    "user": "user",
    "human": "user",
    "prompter": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "system": "system",
    "tool": "tool",
    "observation": "tool",
    "function": "tool",
    "ipython": "tool",
    "function_call": "function_call",
}


# ---- detection ---------------------------------------------------------------------------
def detect_format(records: list[dict], file: str | None = None) -> str:
    """The format of a list of records. Every row is judged on its own keys, so a file that
    mixes formats is refused with the first row that differs from the first one."""
    first = _row_format(records[0])
    if first is None:
        raise DataError(
            f"cannot tell the format from the columns {sorted(records[0])}; expected e.g. "
            f"instruction/input/output (Alpaca), conversations (ShareGPT), messages "
            f"(OpenAI), prompt/completion, prompt/chosen/rejected, text, or text/label; "
            f"pick the format or map the columns by hand",
            file,
            1,
        )
    for number, record in enumerate(records[1:], start=2):
        fmt = _row_format(record)
        if fmt is not None and fmt != first and (first, fmt) not in _NEAR_MISSES:
            raise DataError(f"looks like {fmt}, but row 1 is {first}; one file must hold one format", file, number)
    return first


# a row of the first format that lacks a column reads as one of these; normalizing it then
# names the missing field, which says more than "mixed formats"
_NEAR_MISSES = {
    ("kto", "prompt_completion"),
    ("classification", "text"),
    ("kto", "sharegpt"),
    ("kto", "openai"),
    ("preference", "sharegpt"),
    ("preference", "openai"),
}


def _row_format(record: dict) -> str | None:
    keys = set(record)
    conv_key = next((k for k in ("conversations", "messages", "conversation") if k in keys), None)
    if conv_key:
        turns = record.get(conv_key)
        if isinstance(turns, list) and turns and isinstance(turns[0], dict):
            if "chosen" in keys and "rejected" in keys:
                return "preference"
            if "label" in keys and _looks_boolean(record.get("label")):
                return "kto"
            if "from" in turns[0] and "value" in turns[0]:
                return "sharegpt"
            if "role" in turns[0] and "content" in turns[0]:
                return "openai"
    if "instruction" in keys and "output" in keys:
        return "alpaca"
    if {"prompt", "chosen", "rejected"} <= keys:
        return "preference"
    if {"prompt", "completion", "label"} <= keys and _looks_boolean(record.get("label")):
        return "kto"
    if {"prompt", "completion"} <= keys:
        return "prompt_completion"
    if "text" in keys and "label" in keys:
        return "classification"
    if "text" in keys:
        return "text"
    return None


# ---- column mapping ------------------------------------------------------------------------
# the column names detection and normalization expect; a mapping renames file columns to them
STANDARD_COLUMNS = (
    "instruction",
    "input",
    "output",
    "system",
    "history",
    "conversations",
    "messages",
    "prompt",
    "completion",
    "chosen",
    "rejected",
    "label",
    "text",
    "tools",
)


def parse_column_map(text: str | dict | None) -> dict[str, str]:
    """'instruction=question, output=answer' (standard=file column) into a dict."""
    if not text:
        return {}
    if isinstance(text, dict):
        pairs = list(text.items())
    else:
        pairs = []
        for piece in text.replace("\n", ",").split(","):
            if not piece.strip():
                continue
            standard, sep, column = piece.partition("=")
            if not sep or not standard.strip() or not column.strip():
                raise DataError(
                    f"column mapping '{piece.strip()}' must be written standard=column, e.g. instruction=question"
                )
            pairs.append((standard.strip(), column.strip()))
    mapping = {}
    for standard, column in pairs:
        if standard not in STANDARD_COLUMNS:
            raise DataError(
                f"column mapping names unknown column '{standard}'; map onto one of {', '.join(STANDARD_COLUMNS)}"
            )
        mapping[standard] = column
    return mapping


def apply_column_map(records: list[dict], mapping: dict[str, str], file: str | None = None) -> list[dict]:
    """Records with the mapped file columns renamed to their standard names."""
    if not mapping:
        return records
    present = set().union(*(set(r) for r in records[:200]))
    for standard, column in mapping.items():
        if column not in present:
            raise DataError(
                f"the column mapping takes '{column}' as {standard}, but the file has no "
                f"such column (columns: {', '.join(sorted(present))})",
                file,
                None,
                column,
            )
    renamed = {column: standard for standard, column in mapping.items()}
    return [{renamed.get(k, k): v for k, v in r.items() if k not in mapping or k in renamed} for r in records]


TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes"), ("false", "0", "no")


def _looks_boolean(value: Any) -> bool:
    """true/false, also as 1/0 or yes/no: a CSV has no booleans."""
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return True
    return isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS


def entry_format(entry: DatasetEntry, records: list[dict], file: str | None = None) -> str:
    """The format an entry declares (LLaMA-Factory keys or Workbench's `format`), else detected."""
    if entry.format:
        if entry.format not in FORMATS:
            raise DataError(f"unknown format '{entry.format}'; known: {', '.join(FORMATS)}", file)
        return entry.format
    if entry.raw.get("formatting") == "sharegpt" or "messages" in entry.columns:
        return "preference" if entry.ranking else ("kto" if "kto_tag" in entry.columns else "sharegpt")
    if entry.columns or entry.raw.get("formatting") == "alpaca":
        cols = entry.columns
        if entry.ranking:
            return "preference"
        if "kto_tag" in cols:
            return "kto"
        if set(cols) <= {"prompt"} and "response" not in cols and "query" not in cols:
            return "text"  # LLaMA-Factory pretraining sets map only the prompt column
        return "alpaca"
    return detect_format(records, file)


# ---- normalization -------------------------------------------------------------------------
def normalize(
    records: list[dict],
    entry: DatasetEntry,
    fmt: str | None = None,
    file: str | None = None,
    placeholders: dict[str, str] | None = None,
) -> list[dict]:
    """Canonical rows of `records`; the first bad row raises DataError naming row and field."""
    fmt = fmt or entry_format(entry, records, file)
    normalizer = _NORMALIZERS[fmt]
    rows = []
    for index, record in enumerate(records, start=1):
        try:
            row = normalizer(record, entry)
        except _RowError as err:
            raise DataError(err.message, file, index, err.field) from None
        row["kind"] = KIND_OF_FORMAT[fmt]
        if placeholders:
            row = fill_placeholders(row, placeholders)
        rows.append(row)
    return rows


class _RowError(Exception):
    def __init__(self, message: str, field: str | None = None):
        self.message, self.field = message, field


def _text(record: dict, key: str, required: bool = True, allow_empty: bool = False) -> str | None:
    if key not in record or record[key] is None:
        if required:
            raise _RowError("is missing", key)
        return None
    value = record[key]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _RowError(f"must be text, got {type(value).__name__}", key)
    if required and not allow_empty and not value.strip():
        raise _RowError("is empty", key)
    return value


def _content_text(content: Any, field: str) -> str:
    """Message content: a string, or a list of parts ({type: text, text|value: ...})."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type", "text") == "text":
                text = part.get("text", part.get("value"))
                if isinstance(text, str):
                    parts.append(text)
                    continue
            raise _RowError("holds a non-text part; only text is supported", field)
        return "".join(parts)
    raise _RowError(f"must be text, got {type(content).__name__}", field)


def _alpaca(record: dict, entry: DatasetEntry) -> dict:
    cols = {
        "prompt": "instruction",
        "query": "input",
        "response": "output",
        "history": "history",
        "system": "system",
        **entry.columns,
    }
    instruction = _text(record, cols["prompt"])
    query = _text(record, cols["query"], required=False) or ""
    user = f"{instruction}\n{query}" if query.strip() else instruction
    messages = []
    system = _text(record, cols["system"], required=False)
    if system and system.strip():
        messages.append({"role": "system", "content": system})
    history = record.get(cols["history"]) or []
    if not isinstance(history, list):
        raise _RowError("must be a list of [prompt, response] pairs", cols["history"])
    for turn in history:
        if not (isinstance(turn, (list, tuple)) and len(turn) == 2 and all(isinstance(t, str) for t in turn)):
            raise _RowError("must be a list of [prompt, response] pairs", cols["history"])
        messages += [{"role": "user", "content": turn[0]}, {"role": "assistant", "content": turn[1]}]
    messages.append({"role": "user", "content": user})
    if entry.ranking or ("chosen" in record and "rejected" in record and cols["response"] not in record):
        return {
            "messages": messages,
            "chosen": _text(record, cols.get("chosen", "chosen")),
            "rejected": _text(record, cols.get("rejected", "rejected")),
        }
    messages.append({"role": "assistant", "content": _text(record, cols["response"])})
    return {"messages": messages, "tools": None}


def _turns(record: dict, entry: DatasetEntry, default_key: str, tags: dict) -> list[dict]:
    key = entry.columns.get("messages", default_key)
    if key not in record and default_key == "conversations" and "messages" in record:
        key = "messages"
    turns = record.get(key)
    if not isinstance(turns, list) or not turns:
        raise _RowError("must be a non-empty list of messages", key)
    return [_message(turn, tags, f"{key}[{i}]") for i, turn in enumerate(turns)]


def _message(turn: Any, tags: dict, field: str) -> dict:
    if not isinstance(turn, dict):
        raise _RowError("must be an object", field)
    role_key, content_key = tags["role_tag"], tags["content_tag"]
    if role_key not in turn:
        raise _RowError(f"has no '{role_key}'", field)
    if content_key not in turn:
        raise _RowError(f"has no '{content_key}'", field)
    role_map = {
        **ROLE_ALIASES,
        tags["user_tag"]: "user",
        tags["assistant_tag"]: "assistant",
        tags["system_tag"]: "system",
        tags["observation_tag"]: "tool",
        tags["function_tag"]: "function_call",
    }
    role = role_map.get(turn[role_key])
    if role is None:
        raise _RowError(f"has unknown role {turn[role_key]!r}; expected one of {sorted(set(role_map))}", field)
    message = {"role": role, "content": _content_text(turn[content_key], field)}
    if "loss_weight" in turn:
        message["train"] = bool(turn["loss_weight"])
    return message


def _conversation(messages: list[dict], system: str | None, tools: Any) -> dict:
    if system and system.strip() and not (messages and messages[0]["role"] == "system"):
        messages = [{"role": "system", "content": system}] + messages
    # a function call is what the assistant says: keep it as an assistant turn in a form
    # every chat template accepts
    messages = [{**m, "role": "assistant"} if m["role"] == "function_call" else m for m in messages]
    if tools is not None and not isinstance(tools, str):
        tools = json.dumps(tools, ensure_ascii=False)
    return {"messages": messages, "tools": tools or None}


def _sharegpt(record: dict, entry: DatasetEntry) -> dict:
    tags = {**SHAREGPT_DEFAULT_TAGS, **entry.tags}
    messages = _turns(record, entry, "conversations", tags)
    row = _conversation(
        messages,
        _text(record, entry.columns.get("system", "system"), required=False),
        record.get(entry.columns.get("tools", "tools")),
    )
    _check_conversation(row["messages"], "conversations")
    return row


def _openai(record: dict, entry: DatasetEntry) -> dict:
    tags = {**OPENAI_TAGS, **entry.tags}
    messages = _turns(record, entry, "messages", tags)
    row = _conversation(messages, None, record.get("tools"))
    _check_conversation(row["messages"], "messages")
    return row


def _check_conversation(messages: list[dict], field: str) -> None:
    if not any(m["role"] == "assistant" for m in messages):
        raise _RowError("has no assistant reply to learn from", field)
    for i, message in enumerate(messages):
        if message["role"] == "assistant" and not message["content"].strip():
            raise _RowError("is an empty assistant reply", f"{field}[{i}]")


def _prompt_completion(record: dict, entry: DatasetEntry) -> dict:
    cols = {"prompt": "prompt", "response": "completion", **entry.columns}
    return {
        "messages": [
            {"role": "user", "content": _text(record, cols["prompt"])},
            {"role": "assistant", "content": _text(record, cols["response"])},
        ],
        "tools": None,
    }


def _preference(record: dict, entry: DatasetEntry) -> dict:
    cols = {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected", **entry.columns}
    tags = {**SHAREGPT_DEFAULT_TAGS, **entry.tags}
    if "messages" in entry.columns or any(k in record for k in ("conversations", "messages")):
        prompt = _turns(record, entry, "conversations", tags)
    else:
        prompt = [{"role": "user", "content": _text(record, cols["prompt"])}]
    system = _text(record, cols.get("system", "system"), required=False)
    prompt = _conversation(prompt, system, None)["messages"]
    if not prompt or prompt[-1]["role"] not in ("user", "tool"):
        raise _RowError(
            "must end with a user turn (the prompt the answers reply to)",
            entry.columns.get("messages", "conversations"),
        )
    return {
        "messages": prompt,
        "chosen": _answer(record, cols["chosen"], tags),
        "rejected": _answer(record, cols["rejected"], tags),
    }


def _answer(record: dict, key: str, tags: dict) -> str:
    """A chosen/rejected answer: a string, or a ShareGPT/OpenAI message (or a list ending in one)."""
    if key not in record or record[key] is None:
        raise _RowError("is missing", key)
    value = record[key]
    if isinstance(value, list) and value:
        value = value[-1]
    if isinstance(value, dict):
        for content_key in (tags["content_tag"], "content", "value"):
            if content_key in value:
                value = _content_text(value[content_key], key)
                break
    if not isinstance(value, str):
        raise _RowError(f"must be text or a message, got {type(value).__name__}", key)
    if not value.strip():
        raise _RowError("is empty", key)
    return value


def _label_bool(value: Any, field: str) -> bool:
    if not _looks_boolean(value):
        raise _RowError(f"must be true or false, got {value!r}", field)
    if isinstance(value, str):
        return value.strip().lower() in TRUE_WORDS
    return bool(value)


def _kto(record: dict, entry: DatasetEntry) -> dict:
    cols = {"prompt": "prompt", "response": "completion", "kto_tag": "label", **entry.columns}
    tags = (
        {**OPENAI_TAGS, **entry.tags} if entry.tags or "messages" in record else {**SHAREGPT_DEFAULT_TAGS, **entry.tags}
    )
    label = _label_bool(record.get(cols["kto_tag"]), cols["kto_tag"])
    if "messages" in entry.columns or "messages" in record or "conversations" in record:
        turns = _turns(record, entry, "messages", tags)
        if turns[-1]["role"] != "assistant":
            raise _RowError("must end with the assistant answer being judged", cols.get("messages", "messages"))
        return {"messages": turns[:-1], "completion": turns[-1]["content"], "label": label}
    return {
        "messages": [{"role": "user", "content": _text(record, cols["prompt"])}],
        "completion": _text(record, cols["response"]),
        "label": label,
    }


def _plain_text(record: dict, entry: DatasetEntry) -> dict:
    key = entry.columns.get("prompt", "text")
    return {"text": _text(record, key)}


def _classification(record: dict, entry: DatasetEntry) -> dict:
    text_key = entry.columns.get("prompt", "text")
    label_key = entry.columns.get("label", "label")
    label = record.get(label_key)
    if label is None or (isinstance(label, str) and not label.strip()):
        raise _RowError("is missing", label_key)
    if isinstance(label, (dict, list)):
        raise _RowError(f"must be a class name or number, got {type(label).__name__}", label_key)
    return {"text": _text(record, text_key), "label": str(label).strip()}


_NORMALIZERS: dict[str, Callable[[dict, DatasetEntry], dict]] = {
    "alpaca": _alpaca,
    "sharegpt": _sharegpt,
    "openai": _openai,
    "prompt_completion": _prompt_completion,
    "preference": _preference,
    "kto": _kto,
    "text": _plain_text,
    "classification": _classification,
}


def fill_placeholders(row: dict, values: dict[str, str]) -> dict:
    """Replace {{name}}-style placeholders in every string of a row."""

    def fill(value):
        if isinstance(value, str):
            for key, replacement in values.items():
                value = value.replace("{{" + key + "}}", replacement)
            return value
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    return fill(row)
