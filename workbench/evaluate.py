"""Evaluation: did tuning help on held-out data, and what did it cost?

  metrics        BLEU (sacrebleu), ROUGE-1/2/L (rouge-score), exact match, classification
                 accuracy/precision/recall/F1 + confusion matrix; Chinese scored per character
  evaluate()     loss, perplexity and greedy generations of one target on one split, saved as
                 <run>/eval/<name>.json + <name>.predictions.jsonl
  compare()      base vs tuned on the same prompts: per-row table, improved/worse, metric change
  forgetting()   perplexity on a general-text reference set before vs after tuning
  gap_analysis() the base on the validation split: where it fails before any training

Models come from the chat engine (one base copy, adapters switched on and off), so base and
tuned share weights in memory. No gradio here.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .config import DEFAULT_MODEL, RunConfig, atomic_write_text, from_dict
from .confine import child, run_folder
from .data import DataError, normalize, read_records
from .data.registry import DatasetEntry

EVAL_DIR = "eval"
BASE_RUNS_DIR = ".base"  # base-model results live in saves/.base/<model>/eval/
GENERAL_REFERENCE = Path(__file__).resolve().parent / "data" / "shipped" / "general_reference.json"
FORGETTING_THRESHOLD = 15.0  # % perplexity rise on general text that earns a warning

Progress = Callable[[int, int, str], None]  # (done, total, what) → None


class EvalError(ValueError):
    """An evaluation that cannot run; the message says what is missing and where."""


# ==== text normalisation and tokenisation ===================================================
_CJK = r"\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RE = re.compile(f"[{_CJK}]")
_TOKEN_RE = re.compile(f"[{_CJK}]|[^\\W_{_CJK}]+", re.UNICODE)


def normalize_text(text: str) -> str:
    """Whitespace runs become one space; ends are stripped. Case and punctuation are kept."""
    return " ".join(str(text).split())


def is_chinese(text: str) -> bool:
    """Text in which Chinese characters are at least a third of the non-space characters."""
    chars = [c for c in text if not c.isspace()]
    return bool(chars) and sum(1 for c in chars if _CJK_RE.match(c)) * 3 >= len(chars)


def score_tokens(text: str) -> list[str]:
    """Tokens for ROUGE: each Chinese character alone, other letters/digits as lowercase words.

    rouge-score's own tokenizer drops every non-ASCII character, which would score all
    Chinese text as empty."""
    return _TOKEN_RE.findall(text.lower())


class _ScoreTokenizer:
    """The tokenizer interface rouge-score expects."""

    def tokenize(self, text: str) -> list[str]:
        return score_tokens(text)


# ==== generation metrics ====================================================================
def exact_match(predictions: list[str], references: list[str]) -> float:
    if not references:
        return 0.0
    hits = sum(normalize_text(p) == normalize_text(r) for p, r in zip(predictions, references))
    return hits / len(references)


def bleu(predictions: list[str], references: list[str]) -> float:
    """Corpus BLEU (0-100) with sacrebleu; its 'zh' tokenizer when references are Chinese."""
    import sacrebleu

    if not references:
        return 0.0
    chinese = sum(is_chinese(r) for r in references) * 2 > len(references)
    result = sacrebleu.corpus_bleu(
        [normalize_text(p) for p in predictions],
        [[normalize_text(r) for r in references]],
        tokenize="zh" if chinese else "13a",
    )
    return float(result.score)


def rouge_per_row(predictions: list[str], references: list[str]) -> list[dict[str, float]]:
    """ROUGE-1/2/L F1 of each row (0-1)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_ScoreTokenizer())
    rows = []
    for prediction, reference in zip(predictions, references):
        scores = scorer.score(reference, prediction)  # rouge-score takes (target, prediction)
        rows.append({name: float(s.fmeasure) for name, s in scores.items()})
    return rows


def generation_metrics(predictions: list[str], references: list[str]) -> dict[str, float]:
    """BLEU (0-100), ROUGE-1/2/L F1 averaged over rows (0-1), exact match (0-1)."""
    if len(predictions) != len(references):
        raise EvalError(f"{len(predictions)} predictions for {len(references)} references")
    per_row = rouge_per_row(predictions, references)
    n = max(len(per_row), 1)
    return {
        "exact_match": exact_match(predictions, references),
        "bleu": bleu(predictions, references),
        "rouge1": sum(r["rouge1"] for r in per_row) / n,
        "rouge2": sum(r["rouge2"] for r in per_row) / n,
        "rougeL": sum(r["rougeL"] for r in per_row) / n,
    }


# ==== classification metrics ================================================================
def classification_metrics(predictions: list[str], references: list[str], labels: list[str] | None = None) -> dict:
    """Accuracy, macro precision/recall/F1, per-label scores and the confusion matrix.

    matrix[i][j] counts rows whose true label is labels[i] and predicted label labels[j]; a
    prediction that is no known label is counted in a last column, "(other)"."""
    labels = list(labels or sorted(set(references)))
    index = {label: i for i, label in enumerate(labels)}
    other = len(labels)
    matrix = [[0] * (len(labels) + 1) for _ in labels]
    for prediction, reference in zip(predictions, references):
        if reference not in index:
            raise EvalError(f"reference label {reference!r} is not one of {labels}")
        matrix[index[reference]][index.get(prediction, other)] += 1
    per_label = {}
    for i, label in enumerate(labels):
        tp = matrix[i][i]
        predicted = sum(matrix[r][i] for r in range(len(labels)))
        actual = sum(matrix[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
    total = sum(map(sum, matrix))
    k = max(len(labels), 1)
    return {
        "accuracy": sum(matrix[i][i] for i in range(len(labels))) / total if total else 0.0,
        "precision": sum(v["precision"] for v in per_label.values()) / k,
        "recall": sum(v["recall"] for v in per_label.values()) / k,
        "f1": sum(v["f1"] for v in per_label.values()) / k,
        "per_label": per_label,
        "labels": labels + ["(other)"],
        "confusion_matrix": matrix,
    }


def match_label(text: str, labels: list[str]) -> str:
    """The label a generated answer names: an exact (case-insensitive) match, else the first
    label the answer starts with, else the text itself (counted as "other")."""
    clean = normalize_text(text).strip(" .。!！").lower()
    for label in labels:
        if clean == label.lower():
            return label
    for label in sorted(labels, key=len, reverse=True):
        if clean.startswith(label.lower()):
            return label
    return normalize_text(text)


# ==== what to evaluate ======================================================================
@dataclass
class Example:
    messages: list[dict]  # the prompt: conversation up to the reply to produce
    reference: str  # the reply (or label) the data holds
    row: dict = field(default_factory=dict, repr=False)


def examples_of(rows: list[dict]) -> list[Example]:
    """Prompt + reference of each row: the last assistant turn of a conversation is the
    reference; a classification row's text is the prompt and its label the reference."""
    out = []
    for row in rows:
        if row["kind"] == "conversation":
            messages = row["messages"]
            last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
            if last is None:
                continue
            out.append(Example(messages[:last], messages[last]["content"], row))
        elif row["kind"] == "classification":
            out.append(Example([{"role": "user", "content": row["text"]}], str(row["label"]), row))
        elif row["kind"] in ("preference", "kto"):  # e.g. rated answers: the preferred one
            from .reward_rules import reference_of

            out.append(Example(row["messages"], reference_of(row) or "", row))
        else:
            raise EvalError(
                f"rows of kind '{row['kind']}' have no reference answer to compare "
                f"generations with; evaluate them by perplexity only"
            )
    return out


def run_config_of(spec: str, root: Path) -> RunConfig:
    """The config a run was trained with (for its splits); the base uses the defaults."""
    from .chat import not_generative_reason
    from .runs import BASE_PREFIX, CONFIG_FILE, read_config_checked, resolve_run

    if spec.startswith(BASE_PREFIX):
        return RunConfig(model_name_or_path=spec[len(BASE_PREFIX) :])
    try:
        ref = resolve_run(spec, root)
    except ValueError as err:
        raise EvalError(str(err)) from None
    reason = not_generative_reason(ref.run_dir)
    if reason:  # evaluation scores generated replies
        raise EvalError(reason)
    data, problem = read_config_checked(ref.run_dir)
    if not data:
        raise EvalError(f"run '{ref.run_id}': {problem or CONFIG_FILE + ' is empty'} (in {root})")
    data.pop("output_dir", None)
    return from_dict(data, source=str(ref.run_dir / CONFIG_FILE))


def split_rows(cfg: RunConfig, split: str) -> list[dict]:
    """The rows of one split exactly as training cut them (same sizes and seed)."""
    if split not in ("train", "validation", "test"):
        raise EvalError(f"unknown split '{split}'; use train, validation or test")
    rows = getattr(_splits(cfg), split)
    if not rows:
        hint = {"test": "set test_size or give the dataset a test_file_name", "validation": "set val_size"}.get(
            split, ""
        )
        raise EvalError(
            f"dataset '{cfg.dataset}' has no {split} split with these settings" + (f": {hint}" if hint else "")
        )
    return rows


def _splits(cfg: RunConfig):
    """The splits training cut, whatever the row kind (a base model may be scored on
    classification rows that only the cls stage trains on)."""
    from .data import load_rows, placeholders_of
    from .data import split_rows as cut

    rows, fixed_test = load_rows(cfg.dataset_dir, cfg.datasets(), placeholders_of(cfg), cfg.max_samples)
    return cut(rows, cfg.val_size, cfg.test_size, cfg.seed, fixed_test)


def load_text_rows(path: str | Path) -> list[dict]:
    """Rows of a plain-text reference file (JSON list of {"text": ...})."""
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"reference text file not found: {path}")
    records = read_records(path)
    return normalize(records, DatasetEntry(name=path.stem, format="text"), "text", str(path))


# ==== model access ==========================================================================
class Evaluator:
    """Runs a target (base, run or checkpoint) through loss and generation.

    Uses a ChatEngine so that several targets over the same base share one weights copy."""

    def __init__(
        self,
        engine=None,
        root: Path | None = None,
        batch_size: int = 8,
        max_new_tokens: int = 64,
        cutoff_len: int = 512,
    ):
        from .chat import ChatEngine
        from .runs import saves_root

        self.engine = engine or ChatEngine()
        self.root = Path(root or saves_root())
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.cutoff_len = cutoff_len

    def target(self, spec: str):
        from .chat import resolve_target

        try:
            return resolve_target(spec, self.root)
        except ValueError as err:
            raise EvalError(str(err)) from None

    def _model(self, target):
        # the engine's loader and adapter switch: one base copy serves base and tuned
        loaded = self.engine._load(target)
        return loaded, self._active(loaded, target)

    @contextlib.contextmanager
    def _active(self, loaded, target):
        """The model with the target's adapter on, while no chat generates with it (engines
        that keep one `_busy` lock want it held around `_activate`; older ones lock inside)."""
        busy = getattr(self.engine, "_busy", None)
        with busy if busy is not None else contextlib.nullcontext():
            with self.engine._activate(loaded, target) as model:
                yield model

    # ---- loss and perplexity --------------------------------------------------------------
    def loss(self, spec: str, rows: list[dict], progress: Progress | None = None) -> dict:
        """Token-weighted mean loss over the tokens that carry loss in training, and its
        perplexity (replies for conversations, every token for text)."""
        import torch

        from .data import tokenize_rows

        target = self.target(spec)
        loaded, active = self._model(target)
        tokenizer = loaded.tokenizer
        cfg = RunConfig(stage="pt" if rows and rows[0]["kind"] == "text" else "sft", packing=False)
        examples, _ = tokenize_rows(tokenizer, rows, cfg, cutoff_len=self.cutoff_len)
        total_nll, total_tokens = 0.0, 0
        with active as model, torch.inference_mode():
            device = next(model.parameters()).device
            for start in range(0, len(examples), self.batch_size):
                batch = examples[start : start + self.batch_size]
                ids, labels, mask = _pad_right(batch, tokenizer.pad_token_id or 0)
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
                shift_logits, shift_labels = logits[:, :-1], labels[:, 1:].to(device)
                nll = torch.nn.functional.cross_entropy(
                    shift_logits.reshape(-1, shift_logits.size(-1)),
                    shift_labels.reshape(-1),
                    ignore_index=-100,
                    reduction="sum",
                )
                total_nll += float(nll)
                total_tokens += int((shift_labels != -100).sum())
                if progress:
                    progress(min(start + len(batch), len(examples)), len(examples), "loss")
        if total_tokens == 0:
            raise EvalError("no token carries loss in these rows (all empty or cut off)")
        loss = total_nll / total_tokens
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "tokens": total_tokens}

    # ---- generation -----------------------------------------------------------------------
    def generate(
        self, spec: str, prompts: list[list[dict]], progress: Progress | None = None, max_new_tokens: int | None = None
    ) -> list[str]:
        """Greedy replies to each prompt, in batches (left-padded)."""
        import torch

        from .data.templates import chat_template_for

        target = self.target(spec)
        loaded, active = self._model(target)
        tokenizer = loaded.tokenizer
        template, _ = chat_template_for(tokenizer, "auto")
        texts = [
            tokenizer.apply_chat_template(m, chat_template=template, tokenize=False, add_generation_prompt=True)
            for m in prompts
        ]
        limit = max_new_tokens or self.max_new_tokens
        outputs: list[str] = []
        side = tokenizer.padding_side
        tokenizer.padding_side = "left"  # generation continues from the right end
        if tokenizer.pad_token is None:  # batching needs a pad token; EOS is never attended to
            tokenizer.pad_token = tokenizer.eos_token
        try:
            with active as model, torch.inference_mode():
                device = next(model.parameters()).device
                for start in range(0, len(texts), self.batch_size):
                    batch = tokenizer(
                        texts[start : start + self.batch_size],
                        add_special_tokens=False,
                        return_tensors="pt",
                        padding=True,
                    )
                    batch = {k: v.to(device) for k, v in batch.items()}
                    generated = model.generate(
                        **batch,
                        max_new_tokens=limit,
                        do_sample=False,
                        pad_token_id=tokenizer.pad_token_id,
                        eos_token_id=tokenizer.eos_token_id,
                    )
                    new = generated[:, batch["input_ids"].shape[1] :]
                    outputs += [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
                    if progress:
                        progress(len(outputs), len(texts), "generate")
        finally:
            tokenizer.padding_side = side
        return outputs

    def reply_budget(self, spec: str, references: list[str]) -> int:
        """New tokens to allow: the longest reference plus room, within max_new_tokens."""
        tokenizer = self._model(self.target(spec))[0].tokenizer
        longest = max((len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references), default=0)
        return max(8, min(self.max_new_tokens, longest + 16))


def _pad_right(batch: list[dict], pad_id: int):
    import torch

    width = max(len(e["input_ids"]) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, example in enumerate(batch):
        n = len(example["input_ids"])
        ids[i, :n] = torch.tensor(example["input_ids"])
        labels[i, :n] = torch.tensor(example["labels"])
        mask[i, :n] = 1
    return ids, labels, mask


# ==== one evaluation ========================================================================
@dataclass
class EvalResult:
    target: str
    dataset: str
    split: str
    rows: int
    metrics: dict
    predictions: list[dict]  # prompt, reference, prediction, exact, rougeL per row
    seconds: float = 0.0
    classification: dict | None = None
    created: float = field(default_factory=time.time)

    def summary(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "predictions"}
        return out


def evaluate(
    spec: str,
    dataset: str | None = None,
    split: str = "test",
    evaluator: Evaluator | None = None,
    progress: Progress | None = None,
    limit: int | None = None,
    with_loss: bool = True,
    save: bool = True,
    dataset_dir: str | None = None,
    cfg: RunConfig | None = None,
    scorer=None,
) -> EvalResult:
    """Loss, perplexity and generation metrics of `spec` on a split of its dataset.

    `spec` is 'base:<model>', '<run>' or '<run>/checkpoint-N'. A run is scored on the split
    its own config held out unless `dataset` names another registered dataset; `cfg` (e.g. a
    run's config, to score the base on that run's split) decides the split instead."""
    evaluator = evaluator or Evaluator()
    started = time.time()
    cfg = cfg or run_config_of(spec, evaluator.root)
    if dataset:
        cfg.dataset = dataset
    if dataset_dir:
        cfg.dataset_dir = dataset_dir
    try:
        rows = split_rows(cfg, split)
    except DataError as err:
        raise EvalError(str(err)) from None
    if limit:
        rows = rows[:limit]
    examples = examples_of(rows)
    references = [e.reference for e in examples]
    metrics: dict = {}
    if with_loss and rows[0]["kind"] == "conversation":
        metrics.update(evaluator.loss(spec, rows, progress))
    budget = evaluator.reply_budget(spec, references)
    predictions = evaluator.generate(spec, [e.messages for e in examples], progress, budget)
    classification = None
    if rows[0]["kind"] == "classification":
        labels = sorted(set(references))
        predicted = [match_label(p, labels) for p in predictions]
        classification = classification_metrics(predicted, references, labels)
        metrics.update({k: classification[k] for k in ("accuracy", "precision", "recall", "f1")})
    metrics.update(generation_metrics(predictions, references))
    if scorer is not None:  # mean reward (rules or an rm run) of the generated answers
        from .rewards import mean_reward

        means = mean_reward(scorer, [(e.messages, p, e.reference) for e, p in zip(examples, predictions)])
        metrics.update({("reward" if k == "reward" else f"reward/{k}"): v for k, v in means.items()})
    per_row = rouge_per_row(predictions, references)
    table = [
        {
            "prompt": _prompt_text(e.messages),
            "reference": e.reference,
            "prediction": p,
            "exact": normalize_text(p) == normalize_text(e.reference),
            "rougeL": r["rougeL"],
        }
        for e, p, r in zip(examples, predictions, per_row)
    ]
    result = EvalResult(spec, cfg.dataset, split, len(examples), metrics, table, time.time() - started, classification)
    if save:
        save_result(result, evaluator.root)
    return result


def _prompt_text(messages: list[dict]) -> str:
    """The user-visible prompt: the last user turn (system prompts and history omitted)."""
    users = [m["content"] for m in messages if m["role"] == "user"]
    return users[-1] if users else ""


# ==== results on disk =======================================================================
def result_dir(spec: str, root: Path) -> Path:
    """<run>/eval, <run>/eval/checkpoint-N, or saves/.base/<model>/eval for the base."""
    from .runs import BASE_PREFIX

    if spec.startswith(BASE_PREFIX):
        model = re.sub(r"[^A-Za-z0-9_.-]+", "-", spec[len(BASE_PREFIX) :]).strip("-.") or "model"
        return Path(root) / BASE_RUNS_DIR / model / EVAL_DIR
    run_id, _, checkpoint = spec.partition("/")
    folder = run_folder(root, run_id) / EVAL_DIR
    return child(folder, checkpoint, "checkpoint") if checkpoint else folder


def result_name(dataset: str, split: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{dataset}-{split}")


def save_result(result: EvalResult, root: Path) -> Path:
    folder = result_dir(result.target, root)
    name = result_name(result.dataset, result.split)
    lines = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in result.predictions)
    atomic_write_text(folder / f"{name}.predictions.jsonl", lines)
    path = folder / f"{name}.json"
    atomic_write_text(path, json.dumps(result.summary(), ensure_ascii=False, indent=2) + "\n")
    return path


def load_result(path: str | Path) -> EvalResult:
    path = Path(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    predictions_file = path.with_name(path.stem + ".predictions.jsonl")
    predictions = []
    if predictions_file.is_file():
        predictions = [
            json.loads(line) for line in predictions_file.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
    return EvalResult(predictions=predictions, **data)


def saved_results(run_dir: Path) -> list[Path]:
    """The summary files of a run's evaluations (final result first, then checkpoints)."""
    folder = Path(run_dir) / EVAL_DIR
    if not folder.is_dir():
        return []
    # before/after reports (compare-*.json) and the sample gallery are not single results
    return sorted(p for p in folder.rglob("*.json") if not p.name.startswith("compare-") and p.name != "gallery.json")


# ==== before / after ========================================================================
@dataclass
class Comparison:
    rows: list[dict]  # prompt, reference, base, tuned, change: improved/worse/same
    base_metrics: dict
    tuned_metrics: dict
    delta: dict

    @property
    def improved(self) -> int:
        return sum(r["change"] == "improved" for r in self.rows)

    @property
    def worse(self) -> int:
        return sum(r["change"] == "worse" for r in self.rows)

    def to_dict(self) -> dict:
        return {
            "improved": self.improved,
            "worse": self.worse,
            "same": len(self.rows) - self.improved - self.worse,
            "base_metrics": self.base_metrics,
            "tuned_metrics": self.tuned_metrics,
            "delta": self.delta,
            "rows": self.rows,
        }


def compare(base: EvalResult, tuned: EvalResult) -> Comparison:
    """Row by row: a row improved when the tuned answer is exact and the base's was not, or
    neither is exact and its ROUGE-L rose; worse the other way round."""
    if [p["reference"] for p in base.predictions] != [p["reference"] for p in tuned.predictions]:
        raise EvalError("base and tuned were scored on different rows; evaluate both on the same dataset and split")
    rows = []
    for b, t in zip(base.predictions, tuned.predictions):
        before, after = (b["exact"], round(b["rougeL"], 6)), (t["exact"], round(t["rougeL"], 6))
        change = "improved" if after > before else "worse" if after < before else "same"
        rows.append(
            {
                "prompt": b["prompt"],
                "reference": b["reference"],
                "base": b["prediction"],
                "tuned": t["prediction"],
                "change": change,
            }
        )
    delta = {
        k: tuned.metrics[k] - base.metrics[k]
        for k in tuned.metrics
        if k in base.metrics and isinstance(tuned.metrics[k], (int, float))
    }
    return Comparison(rows, base.metrics, tuned.metrics, delta)


# ==== forgetting ============================================================================
@dataclass
class Forgetting:
    before: float  # perplexity of the base on the reference text
    after: float  # perplexity of the tuned model
    threshold: float

    @property
    def change_percent(self) -> float:
        return (self.after - self.before) / self.before * 100.0

    @property
    def warning(self) -> bool:
        return self.change_percent > self.threshold

    def to_dict(self) -> dict:
        return {
            "perplexity_before": self.before,
            "perplexity_after": self.after,
            "change_percent": self.change_percent,
            "threshold_percent": self.threshold,
            "warning": self.warning,
        }


def forgetting(
    base_spec: str,
    tuned_spec: str,
    evaluator: Evaluator | None = None,
    reference: str | Path = GENERAL_REFERENCE,
    threshold: float = FORGETTING_THRESHOLD,
    progress: Progress | None = None,
) -> Forgetting:
    """Perplexity on general text before and after tuning: a rise means the model forgot."""
    evaluator = evaluator or Evaluator()
    rows = load_text_rows(reference)
    before = evaluator.loss(base_spec, rows, progress)["perplexity"]
    after = evaluator.loss(tuned_spec, rows, progress)["perplexity"]
    return Forgetting(before, after, threshold)


def base_spec_of(spec: str, root: Path) -> str:
    """The base-model spec a run was tuned from."""
    from .runs import BASE_PREFIX

    if spec.startswith(BASE_PREFIX):
        return spec
    cfg = run_config_of(spec, root)
    return BASE_PREFIX + (cfg.model_name_or_path or DEFAULT_MODEL)


def before_after(
    spec: str,
    dataset: str | None = None,
    split: str = "test",
    evaluator: Evaluator | None = None,
    progress: Progress | None = None,
    limit: int | None = None,
    threshold: float = FORGETTING_THRESHOLD,
    reference: str | Path = GENERAL_REFERENCE,
    reward=None,
) -> dict:
    """Base and tuned on the same prompts, plus the forgetting check; saved beside the run as
    eval/compare-<dataset>-<split>.json. With a reward (a RewardSpec; by default the run's own
    when it trained stage grpo/rloo) both also get the mean reward of their answers."""
    evaluator = evaluator or Evaluator()
    base = base_spec_of(spec, evaluator.root)
    cfg = run_config_of(spec, evaluator.root)
    scorer = reward_scorer(cfg, reward)
    tuned_result = evaluate(spec, dataset, split, evaluator, progress, limit, scorer=scorer)
    # the base is scored on exactly the rows the run held out
    base_result = evaluate(base, dataset, split, evaluator, progress, limit, cfg=cfg, scorer=scorer)
    comparison = compare(base_result, tuned_result)
    forgot = forgetting(base, spec, evaluator, reference, threshold, progress)
    report = {
        "target": spec,
        "base": base,
        "dataset": tuned_result.dataset,
        "split": split,
        **comparison.to_dict(),
        "forgetting": forgot.to_dict(),
        "created": time.time(),
    }
    folder = result_dir(spec, evaluator.root)
    atomic_write_text(
        folder / f"compare-{result_name(tuned_result.dataset, split)}.json",
        json.dumps(report, ensure_ascii=False, indent=2) + "\n",
    )
    return report


def reward_scorer(cfg: RunConfig, reward=None):
    """A rewards.Scorer for `reward` (a RewardSpec), else for the rewards a grpo/rloo run
    trained with; None when there is no reward to report."""
    from .rewards import RL_STAGES, RewardSpec, Scorer

    if reward is None and cfg.stage in RL_STAGES:
        reward = RewardSpec.from_config(cfg)
    return Scorer(reward) if reward is not None and reward.names else None


def load_comparison(run_dir: Path) -> dict | None:
    """The newest saved before/after report of a run, if any."""
    files = sorted(Path(run_dir, EVAL_DIR).glob("compare-*.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(files[-1].read_text(encoding="utf-8")) if files else None


# ==== gap analysis ==========================================================================
def gap_analysis(
    base_spec: str,
    dataset: str,
    evaluator: Evaluator | None = None,
    progress: Progress | None = None,
    limit: int | None = 50,
    cfg: RunConfig | None = None,
) -> dict:
    """The base on the validation split (the test split when there is none): its metrics and
    the rows it gets wrong, i.e. what tuning must fix. Nothing is trained."""
    evaluator = evaluator or Evaluator()
    cfg = cfg or RunConfig(model_name_or_path=base_spec.split(":", 1)[-1], dataset=dataset)
    cfg.dataset = dataset
    try:
        splits = _splits(cfg)
    except DataError as err:
        raise EvalError(str(err)) from None
    # held-out rows when there are any; before a split is chosen, the training rows will do
    split = next(name for name in ("validation", "test", "train") if getattr(splits, name))
    rows = getattr(splits, split)[:limit] if limit else getattr(splits, split)
    examples = examples_of(rows)
    references = [e.reference for e in examples]
    predictions = evaluator.generate(
        base_spec, [e.messages for e in examples], progress, evaluator.reply_budget(base_spec, references)
    )
    metrics = generation_metrics(predictions, references)
    per_row = rouge_per_row(predictions, references)
    failures = [
        {"prompt": _prompt_text(e.messages), "reference": e.reference, "prediction": p, "rougeL": r["rougeL"]}
        for e, p, r in zip(examples, predictions, per_row)
        if normalize_text(p) != normalize_text(e.reference)
    ]
    return {
        "target": base_spec,
        "dataset": dataset,
        "split": split,
        "rows": len(examples),
        "failed": len(failures),
        "metrics": metrics,
        "failures": failures,
    }
