"""Ratings of chat answers, collected into datasets that stages dpo, rm, kto and grpo read.

The Chat tab (and `workbench chat`) calls `rate` with a verdict on the answer(s) just shown:

  compare mode   "a" (A is better), "b" (B is better), "tie", "both_bad"
  single mode    "up", "down", "edit" (with the corrected text: it becomes the chosen answer
                 and the model's the rejected one)

A ratings dataset is either of kind `preference` (pairs: prompt turns + chosen + rejected) or
`kto` (single judgements: prompt turns + answer + true/false label). Verdicts become rows:

  verdict        preference dataset              kto dataset
  a / b          one pair (winner chosen)         winner true, loser false
  edit           corrected chosen, model rejected corrected true, model's false
  up / down      -- (refused: not a pair)         the answer true / false
  both_bad       kept in the side file            both answers false
  tie            kept in the side file            kept in the side file

Ratings that make no training row (a tie; both bad in a pairs dataset) go to a side file
`<name>.unpaired.jsonl`, so every rating is kept and counted. Every row also holds the
conversation so far, both answers, both models' names, the generation settings and the time.

Datasets live in <dataset_dir>/uploads/<name>.jsonl and are registered like any upload (they
survive restarts and the Data tab previews them). A rating rewrites the file through a temp
file and a rename, under a lock, so a crash leaves the old file or the new one, never half a
row.
"""

from __future__ import annotations

import fcntl
import json
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from .config import atomic_write_text
from .data.readers import DataError
from .data.registry import UPLOADS, _read_registry_file, check_name, register_upload, uploads_registry

KINDS = ("preference", "kto")
COMPARE_VERDICTS = ("a", "b", "tie", "both_bad")
SINGLE_VERDICTS = ("up", "down", "edit")
VERDICTS = COMPARE_VERDICTS + SINGLE_VERDICTS
SIDE_SUFFIX = ".unpaired.jsonl"
# rows hold OpenAI-style turns ({"role", "content"})
OPENAI_ROLES = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "system_tag": "system",
}
_LOCK = threading.Lock()


class RatingError(ValueError):
    pass


def dataset_file(dataset_dir, name: str) -> Path:
    return Path(dataset_dir) / UPLOADS / f"{name}.jsonl"


def side_file(dataset_dir, name: str) -> Path:
    return Path(dataset_dir) / UPLOADS / f"{name}{SIDE_SUFFIX}"


def ratings_datasets(dataset_dir) -> dict[str, str]:
    """Name -> kind of every ratings dataset registered under dataset_dir."""
    try:
        registry = _read_registry_file(uploads_registry(dataset_dir))
    except DataError:
        return {}
    return {
        name: entry.get("format")
        for name, entry in registry.items()
        if isinstance(entry, dict) and entry.get("ratings") and entry.get("format") in KINDS
    }


def create(dataset_dir, name: str, kind: str) -> None:
    """Register an empty ratings dataset (nothing is written when the name is taken or bad)."""
    if kind not in KINDS:
        raise RatingError(f"a ratings dataset is of kind {' or '.join(KINDS)}, not {kind!r}")
    try:
        check_name(dataset_dir, name)
    except DataError as err:
        raise RatingError(str(err)) from None
    path = dataset_file(dataset_dir, name)
    atomic_write_text(path, "")
    what = "preference pairs" if kind == "preference" else "single judgements (KTO)"
    register_upload(
        dataset_dir,
        name,
        path,
        {"format": kind, "ratings": True, "tags": OPENAI_ROLES, "description": f"ratings from the Chat tab: {what}"},
    )


def count(dataset_dir, name: str) -> dict[str, int]:
    """{'rows': training rows, 'unpaired': ratings kept aside, 'ratings': every rating}."""
    rows = _line_count(dataset_file(dataset_dir, name))
    unpaired = _line_count(side_file(dataset_dir, name))
    ratings = len({r.get("rating_id") for r in _read(dataset_file(dataset_dir, name))}) + unpaired
    return {"rows": rows, "unpaired": unpaired, "ratings": ratings}


def rate(
    dataset_dir,
    name: str,
    kind: str,
    verdict: str,
    *,
    prompt: str,
    history: list[dict] | None,
    answers: tuple[str, ...] | list[str],
    models: tuple[str, ...] | list[str],
    settings: dict | None = None,
    edited: str | None = None,
) -> dict:
    """Record one rating in dataset `name` (created with `kind` when it does not exist yet).

    Returns count() after the rating, plus 'added' (training rows this rating made)."""
    if verdict not in VERDICTS:
        raise RatingError(f"unknown verdict {verdict!r}; one of {', '.join(VERDICTS)}")
    if not (prompt or "").strip():
        raise RatingError("there is no prompt to rate: send a message first")
    answers = [a for a in answers if a is not None]
    needed = 2 if verdict in COMPARE_VERDICTS else 1
    if len(answers) < needed or not all((a or "").strip() for a in answers[:needed]):
        raise RatingError(f"verdict {verdict!r} needs {needed} answer(s); wait for the reply")
    if verdict == "edit" and not (edited or "").strip():
        raise RatingError("'Edit the answer' needs the corrected text")
    existing = ratings_datasets(dataset_dir)
    with _locked(dataset_dir):
        if name not in existing:
            create(dataset_dir, name, kind)
            existing[name] = kind
        kind = existing[name]
        turns = [
            {"role": m["role"], "content": m["content"]}
            for m in (history or [])
            if m.get("role") in ("system", "user", "assistant") and isinstance(m.get("content"), str)
        ]
        turns.append({"role": "user", "content": prompt})
        models = list(models) + [""] * (2 - len(models))
        meta = {
            "verdict": verdict,
            "answer_a": answers[0],
            "answer_b": answers[1] if len(answers) > 1 else None,
            "model_a": models[0],
            "model_b": models[1] or None,
            "settings": settings or {},
            "rating_id": uuid.uuid4().hex,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        rows, side = _rows_for(kind, verdict, turns, answers, models, edited, meta)
        if rows:
            _append(dataset_file(dataset_dir, name), rows)
        if side:
            _append(side_file(dataset_dir, name), side)
    return {**count(dataset_dir, name), "added": len(rows), "kind": kind}


def _rows_for(kind, verdict, turns, answers, models, edited, meta):
    """(training rows, side rows) a verdict makes in a dataset of `kind`."""

    def pair(chosen, rejected, chosen_model, rejected_model):
        return {
            "messages": turns,
            "chosen": chosen,
            "rejected": rejected,
            "chosen_model": chosen_model,
            "rejected_model": rejected_model,
            **meta,
        }

    def judged(answer, good, model):
        return {"messages": turns + [{"role": "assistant", "content": answer}], "label": good, "model": model, **meta}

    a, b = answers[0], answers[1] if len(answers) > 1 else None
    if verdict in ("a", "b"):
        (win, win_model), (lose, lose_model) = (
            ((a, models[0]), (b, models[1])) if verdict == "a" else ((b, models[1]), (a, models[0]))
        )
        if kind == "preference":
            return [pair(win, lose, win_model, lose_model)], []
        return [judged(win, True, win_model), judged(lose, False, lose_model)], []
    if verdict == "edit":
        if kind == "preference":
            return [pair(edited, a, "edited by hand", models[0])], []
        return [judged(edited, True, "edited by hand"), judged(a, False, models[0])], []
    if verdict in ("up", "down"):
        if kind == "preference":
            raise RatingError(
                "thumbs up/down is a single judgement: choose or create a KTO ratings "
                "dataset (a pairs dataset takes A/B verdicts and edits)"
            )
        return [judged(a, verdict == "up", models[0])], []
    if verdict == "both_bad" and kind == "kto":
        return [judged(a, False, models[0]), judged(b, False, models[1])], []
    return [], [{"messages": turns, **meta}]  # a tie, or both bad in a pairs dataset


# ---- files -----------------------------------------------------------------------------------
@contextmanager
def _locked(dataset_dir):
    """One writer at a time: threads of this server and other processes (a lock file)."""
    folder = Path(dataset_dir) / UPLOADS
    folder.mkdir(parents=True, exist_ok=True)
    with _LOCK, open(folder / ".ratings.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _append(path: Path, rows: list[dict]) -> None:
    """Old content + the new lines, written whole to a temp file and renamed over the file."""
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    atomic_write_text(path, old + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def _line_count(path: Path) -> int:
    if not path.is_file():
        return 0
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


# ---- what the Chat tab (and `workbench chat`) hand over ----------------------------------------
def rate_panes(
    dataset_dir,
    name: str,
    kind: str,
    verdict: str,
    pane_a: list[dict],
    pane_b: list[dict] | None,
    model_a: str,
    model_b: str | None,
    settings: dict | None = None,
    edited: str | None = None,
) -> dict:
    """Rate the last exchange shown in the chat panes: the prompt is pane A's last user turn,
    the conversation so far what came before it, the answers each pane's last reply."""
    if not (name or "").strip():
        raise RatingError("choose or type the name of a ratings dataset first")
    prompt, history, answer_a = last_exchange(pane_a)
    answers, models = [answer_a], [model_a]
    if verdict in COMPARE_VERDICTS:
        _, _, answer_b = last_exchange(pane_b or [])
        answers.append(answer_b)
        models.append(model_b or "")
    return rate(
        dataset_dir,
        name.strip(),
        kind,
        verdict,
        prompt=prompt,
        history=history,
        answers=answers,
        models=models,
        settings=settings,
        edited=edited,
    )


def last_exchange(pane: list[dict]) -> tuple[str, list[dict], str]:
    """(last user prompt, the turns before it, the reply after it) of a chat pane."""
    turns = [{"role": m.get("role"), "content": _plain_text(m.get("content"))} for m in pane or []]
    users = [i for i, m in enumerate(turns) if m["role"] == "user"]
    if not users:
        return "", [], ""
    last = users[-1]
    replies = [m["content"] for m in turns[last + 1 :] if m["role"] == "assistant"]
    return turns[last]["content"], turns[:last], replies[-1] if replies else ""


def _plain_text(content) -> str:
    """Chat message content as text (a UI may hand over a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_plain_text(part) for part in content)
    if isinstance(content, dict):
        return str(content.get("text") or content.get("content") or "")
    return "" if content is None else str(content)
