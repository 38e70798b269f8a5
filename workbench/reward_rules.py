"""Rule rewards and the checks of reward settings: plain functions of text, no torch, no files.

Kept apart from workbench.rewards (which loads data and reward models) so that config
validation can use them without importing the data or model layers."""

from __future__ import annotations

import json
import re

RULES = ("exact_match", "numeric_match", "regex", "json", "length")
RL_STAGES = ("grpo", "rloo")
RL_METHODS = ("lora", "full", "freeze")
REWARD_MODEL_NAME = "reward_model"
_NUMBER = re.compile(r"[-+]?(?:\d+(?:[.,]\d+)*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")


def split_list(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


# ---- the rules -------------------------------------------------------------------------------
def normalize_answer(text: str) -> str:
    """Whitespace-normalised text (the same comparison `workbench eval` calls exact match)."""
    return " ".join(str(text).split())


def exact_match(answer: str, reference: str | None) -> float:
    return float(reference is not None and normalize_answer(answer) == normalize_answer(reference))


def first_number(text: str) -> float | None:
    match = _NUMBER.search(str(text or ""))
    if not match:
        return None
    token = match.group(0)
    # "1,234" is a thousands separator; "3,5" a decimal comma
    token = token.replace(",", "") if re.search(r",\d{3}(?!\d)", token) else token.replace(",", ".")
    try:
        return float(token)
    except ValueError:
        return None


def numeric_match(answer: str, reference: str | None) -> float:
    want, got = first_number(reference or ""), first_number(answer)
    if want is None or got is None:
        return 0.0
    return float(abs(want - got) <= 1e-6 * max(1.0, abs(want)))


def _strip_fence(text: str) -> str:
    """An answer that wraps its JSON in a ```json fence still counts as JSON."""
    text = text.strip()
    match = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, flags=re.S)
    return match.group(1) if match else text


_JSON_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def matches_schema(value, schema: dict) -> bool:
    """The subset of JSON Schema a rule needs: type, required, properties, items, enum."""
    kind = schema.get("type")
    if isinstance(kind, list):
        if not any(matches_schema(value, {**schema, "type": k}) for k in kind):
            return False
    elif kind == "integer":
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            return False
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
    elif kind in _JSON_TYPES:
        if kind != "boolean" and isinstance(value, bool):
            return False
        if not isinstance(value, _JSON_TYPES[kind]):
            return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if isinstance(value, dict):
        if any(key not in value for key in schema.get("required", [])):
            return False
        for key, sub in (schema.get("properties") or {}).items():
            if key in value and isinstance(sub, dict) and not matches_schema(value[key], sub):
                return False
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return all(matches_schema(item, schema["items"]) for item in value)
    return True


def json_valid(answer: str, schema: dict | None = None) -> float:
    try:
        value = json.loads(_strip_fence(answer))
    except (ValueError, TypeError):
        return 0.0
    return float(schema is None or matches_schema(value, schema))


def length_window(answer: str, low: int, high: int | None) -> float:
    size = len(str(answer).strip())
    return float(size >= low and (high is None or size <= high))


# ---- checking settings -----------------------------------------------------------------------
def parse_weights(text: str) -> list[float]:
    weights = []
    for part in split_list(text):
        weights.append(float(part))  # ValueError names the part
    return weights


def config_problems(cfg) -> list[str]:
    """What is wrong with a grpo/rloo config, each message naming its key; no file is read."""
    problems = []
    rules = split_list(cfg.reward_funcs)
    unknown = [r for r in rules if r not in RULES]
    if unknown:
        problems.append(f"'reward_funcs' names unknown rule(s) {', '.join(unknown)}; known: {', '.join(RULES)}")
    if not rules and not cfg.reward_model:
        problems.append(
            f"stage {cfg.stage} needs a reward: set 'reward_funcs' (rules such as "
            f"exact_match) and/or 'reward_model' (a run of stage rm)"
        )
    count = len(rules) + (1 if cfg.reward_model else 0)
    try:
        weights = parse_weights(cfg.reward_weights)
    except ValueError:
        problems.append(f"'reward_weights' must be numbers separated by commas, got {cfg.reward_weights!r}")
        weights = []
    if weights and len(weights) != count:
        problems.append(
            f"'reward_weights' has {len(weights)} weight(s) for {count} reward(s) ({', '.join(reward_names(cfg))})"
        )
    if "regex" in rules:
        if not cfg.reward_regex:
            problems.append("'reward_funcs' has regex but 'reward_regex' is empty")
        else:
            try:
                re.compile(cfg.reward_regex)
            except re.error as err:
                problems.append(f"'reward_regex' {cfg.reward_regex!r} does not compile: {err}")
    if cfg.reward_json_schema:
        try:
            schema = json.loads(cfg.reward_json_schema)
            if not isinstance(schema, dict):
                raise ValueError("not an object")
        except ValueError as err:
            problems.append(f"'reward_json_schema' is not a JSON object: {err}")
    if "length" in rules and cfg.reward_max_length is None and not cfg.reward_min_length:
        problems.append("'reward_funcs' has length but neither 'reward_min_length' nor 'reward_max_length' is set")
    if cfg.reward_max_length is not None and cfg.reward_max_length < cfg.reward_min_length:
        problems.append(
            f"'reward_max_length' {cfg.reward_max_length} is below 'reward_min_length' {cfg.reward_min_length}"
        )
    if cfg.finetuning_type not in RL_METHODS:
        problems.append(
            f"stage {cfg.stage} trains a policy with finetuning_type "
            f"{', '.join(RL_METHODS)}, not '{cfg.finetuning_type}'"
        )
    if cfg.pissa_init:
        problems.append(
            f"'pissa_init' rewrites the base weights, so the adapter switched off is no "
            f"longer the reference of stage {cfg.stage}; leave it off"
        )
    batch = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
    if batch % cfg.num_generations:
        problems.append(
            f"'per_device_train_batch_size' x 'gradient_accumulation_steps' = {batch} "
            f"answers per step must be a multiple of 'num_generations' "
            f"{cfg.num_generations}"
        )
    if cfg.stage == "rloo" and cfg.num_generations < 2:
        problems.append("stage rloo compares each answer with the others: 'num_generations' >= 2")
    return problems


def reward_names(cfg) -> list[str]:
    return split_list(cfg.reward_funcs) + ([REWARD_MODEL_NAME] if cfg.reward_model else [])


# ---- rows → prompts and reference answers ---------------------------------------------------
def prompt_of(row: dict) -> list[dict] | None:
    """The turns a policy answers: a conversation up to its last assistant reply, or the prompt
    of a preference/KTO row."""
    kind = row.get("kind")
    messages = row.get("messages") or []
    if kind == "conversation":
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
        turns = messages[:last]
    elif kind in ("preference", "kto"):
        turns = messages
    else:
        return None
    return turns if turns and turns[-1]["role"] in ("user", "tool") else None


def reference_of(row: dict) -> str | None:
    """The reference answer rules compare with: the last assistant reply, the chosen answer,
    or a KTO answer marked good."""
    kind = row.get("kind")
    if kind == "conversation":
        replies = [m["content"] for m in row.get("messages", []) if m["role"] == "assistant"]
        return replies[-1] if replies else None
    if kind == "preference":
        return row.get("chosen")
    if kind == "kto" and row.get("label"):
        return row.get("completion")
    return None
