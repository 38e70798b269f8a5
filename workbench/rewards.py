"""Rewards of the online stages grpo and rloo, and of `workbench eval`'s mean reward.

A reward is a rule (a plain function of the answer text and the row's reference answer) or a
finished stage-rm run of this workbench (its scalar score). Several are combined as a weighted
sum: trl's `reward_funcs` + `reward_weights`, with the rm run last. Rules return a number for
every answer, so the sum is always defined; every rule scores 0 (fail) or 1 (pass).

Nothing here imports torch until a reward model is loaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .reward_rules import (  # the rules live apart so config validation imports no data layer
    REWARD_MODEL_NAME,
    RL_STAGES,
    exact_match,
    json_valid,
    length_window,
    numeric_match,
    parse_weights,
    prompt_of,
    reference_of,
    split_list,
)


def reward_run_problem(spec: str, key: str = "reward_model") -> str | None:
    """None when `spec` is a finished run of stage rm; otherwise why not, naming the key."""
    from .preference import find_run

    run_dir = find_run(spec)
    config = run_dir / "config.yaml"
    if not config.is_file():
        return f"'{key}' {spec!r} is not a run (no {config})"
    try:
        import yaml

        stage = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("stage", "sft")
    except (OSError, ValueError, yaml.YAMLError) as err:
        return f"'{key}' {spec!r}: its config.yaml cannot be read ({err})"
    if stage != "rm":
        return f"'{key}' {spec!r} is a run of stage {stage}, not a reward model (stage rm)"
    if not (run_dir / "final").is_dir():
        return f"'{key}' {spec!r} has not finished (no final/ folder)"
    return None


def precheck(cfg) -> list[str]:
    """Checks of a grpo/rloo config that read files (the reward model run, the dataset's rows);
    run before a run folder exists, so bad input never starts a run."""
    if cfg.stage not in RL_STAGES:
        return []
    problems = []
    if cfg.reward_model and (problem := reward_run_problem(cfg.reward_model)):
        problems.append(problem)
    try:
        from .data import load_rows, placeholders_of

        rows, _ = load_rows(cfg.dataset_dir, cfg.datasets(), placeholders_of(cfg), cfg.max_samples)
    except Exception as err:  # noqa: BLE001 - the message says what is wrong with the data
        problems.append(f"'dataset' {cfg.dataset}: {err}")
        return problems
    if not rows:
        problems.append(f"'dataset' {cfg.dataset} has no rows")
    elif not all(prompt_of(r) for r in rows[:1000]):
        kind = next(r["kind"] for r in rows if not prompt_of(r))
        problems.append(
            f"'dataset' {cfg.dataset} holds {kind} rows without prompts: stage "
            f"{cfg.stage} needs conversations (a user turn to answer), preference or "
            f"KTO rows"
        )
    needs_reference = {"exact_match", "numeric_match"} & set(split_list(cfg.reward_funcs))
    if rows and needs_reference and not any(reference_of(r) for r in rows[:1000]):
        problems.append(
            f"'reward_funcs' {', '.join(sorted(needs_reference))} compares with the "
            f"row's reference answer, but dataset {cfg.dataset} has none"
        )
    return problems


# ---- reward functions ------------------------------------------------------------------------
@dataclass
class RewardSpec:
    """What scores an answer: rules with their settings, an optional rm run, and the weights."""

    rules: list[str]
    reward_model: str | None = None
    weights: list[float] = field(default_factory=list)
    regex: str = ""
    json_schema: dict | None = None
    min_length: int = 0
    max_length: int | None = None

    @classmethod
    def from_config(cls, cfg) -> RewardSpec:
        schema = json.loads(cfg.reward_json_schema) if cfg.reward_json_schema else None
        return cls(
            split_list(cfg.reward_funcs),
            cfg.reward_model,
            parse_weights(cfg.reward_weights),
            cfg.reward_regex,
            schema,
            cfg.reward_min_length,
            cfg.reward_max_length,
        )

    @property
    def names(self) -> list[str]:
        return self.rules + ([REWARD_MODEL_NAME] if self.reward_model else [])

    def weight_list(self) -> list[float]:
        return self.weights or [1.0] * len(self.names)

    def rule(self, name: str) -> Callable[[str, str | None], float]:
        if name == "exact_match":
            return exact_match
        if name == "numeric_match":
            return numeric_match
        if name == "regex":
            pattern = re.compile(self.regex)
            return lambda answer, _ref: float(pattern.search(answer) is not None)
        if name == "json":
            return lambda answer, _ref: json_valid(answer, self.json_schema)
        if name == "length":
            return lambda answer, _ref: length_window(answer, self.min_length, self.max_length)
        raise ValueError(f"unknown reward rule {name!r}")


def _completion_text(completion) -> str:
    if isinstance(completion, list):  # conversational: the assistant message(s)
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


def trl_reward_funcs(spec: RewardSpec, tokenizer=None) -> list[Callable]:
    """Functions in trl's reward-function shape (prompts, completions, **row columns) -> floats,
    named after their rule, for GRPOTrainer/RLOOTrainer."""
    funcs = []
    for name in spec.rules:
        rule = spec.rule(name)

        def reward(prompts, completions, reference=None, _rule=rule, **_):
            refs = reference if reference is not None else [None] * len(completions)
            return [_rule(_completion_text(c), r) for c, r in zip(completions, refs)]

        reward.__name__ = name
        funcs.append(reward)
    if spec.reward_model:
        funcs.append(reward_model_func(spec.reward_model))
    return funcs


def reward_model_func(run: str) -> Callable:
    """The score of a finished rm run as a trl reward function (loaded once). Prompts arrive
    rendered through the chat template, so the rm reads exactly the text it was trained on."""
    from .preference import RewardModel

    model = RewardModel(run)

    def reward_model(prompts, completions, **_):
        eos = model.tokenizer.eos_token or ""
        return [model.score_rendered(p, _completion_text(c) + eos) for p, c in zip(prompts, completions)]

    reward_model.__name__ = REWARD_MODEL_NAME
    return reward_model


class Scorer:
    """Scores (prompt turns, answer, reference) triples with a RewardSpec, e.g. for evaluation."""

    def __init__(self, spec: RewardSpec):
        self.spec = spec
        self._rules = {name: spec.rule(name) for name in spec.rules}
        self._rm = None
        if spec.reward_model:
            from .preference import RewardModel

            self._rm = RewardModel(spec.reward_model)

    def score(self, prompt: list[dict], answer: str, reference: str | None) -> dict[str, float]:
        parts = {name: rule(answer, reference) for name, rule in self._rules.items()}
        if self._rm is not None:
            parts[REWARD_MODEL_NAME] = self._rm.score(prompt, answer)
        total = sum(w * parts[n] for n, w in zip(self.spec.names, self.spec.weight_list()))
        return {**parts, "reward": total}


def mean_reward(scorer: Scorer, rows: list[tuple[list[dict], str, str | None]]) -> dict[str, float]:
    """Mean of each reward and of the weighted sum over (prompt, answer, reference) rows."""
    totals: dict[str, float] = {}
    for prompt, answer, reference in rows:
        for name, value in scorer.score(prompt, answer, reference).items():
            totals[name] = totals.get(name, 0.0) + value
    return {name: value / max(1, len(rows)) for name, value in totals.items()}


def samples_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "completions.jsonl"


def read_samples(run_dir: str | Path, last: int = 5) -> list[dict]:
    """The last logging steps' completion samples of a grpo/rloo run (a torn last line from a
    run being written is skipped)."""
    path = samples_path(run_dir)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines()[-last:]:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
