"""Stages dpo (every pref_loss, with and without a reference), kto, rm and pt on the tiny model."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from workbench.data.registry import SHIPPED_DIR

PAIRS = [
    ("What colour is the sky on a clear day?", "Blue.", "The sky is made of green cheese."),
    ("How many legs does a cat have?", "Four.", "A cat has eleven legs, all purple."),
    ("What is two plus two?", "Four.", "Two plus two is a fish."),
    ("Name the capital of France.", "Paris.", "The capital of France is the moon."),
    ("What do bees make?", "Honey.", "Bees make small metal cars."),
    ("Is ice cold or hot?", "Cold.", "Ice is hotter than the sun."),
    ("What do you drink when thirsty?", "Water.", "You drink sand when thirsty."),
    ("Which animal barks?", "A dog.", "Trees bark loudly at night."),
]
DOCS = [
    "The river runs north past the old mill and the stone bridge.",
    "Bread is made from flour, water, salt and yeast, then baked.",
    "A lighthouse warns ships away from the rocks at night.",
    "The library opens at nine and closes at six on weekdays.",
    "Snow fell all night and covered the quiet village square.",
    "Copper conducts heat and electricity better than iron does.",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pref-data")
    (folder / "pairs.json").write_text(
        json.dumps([{"prompt": p, "chosen": c, "rejected": r} for p, c, r in PAIRS]), encoding="utf-8"
    )
    # the same pairs ShareGPT-style, as LLaMA-Factory writes ranking datasets
    (folder / "pairs_sharegpt.json").write_text(
        json.dumps(
            [
                {
                    "conversations": [{"from": "human", "value": p}],
                    "chosen": {"from": "gpt", "value": c},
                    "rejected": {"from": "gpt", "value": r},
                }
                for p, c, r in PAIRS
            ]
        ),
        encoding="utf-8",
    )
    (folder / "liked.json").write_text(
        json.dumps(
            [{"prompt": p, "completion": a, "label": good} for p, c, r in PAIRS for a, good in ((c, True), (r, False))]
        ),
        encoding="utf-8",
    )
    (folder / "docs.json").write_text(json.dumps([{"text": d} for d in DOCS]), encoding="utf-8")
    # a registry entry stays inside its folder: a conversation set copied beside the pairs
    shutil.copy(SHIPPED_DIR / "identity.json", folder / "identity.json")
    (folder / "dataset_info.json").write_text(
        json.dumps(
            {
                "pairs": {"file_name": "pairs.json"},
                "pairs_sharegpt": {
                    "file_name": "pairs_sharegpt.json",
                    "formatting": "sharegpt",
                    "ranking": True,
                    "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"},
                },
                "liked": {"file_name": "liked.json"},
                "docs": {"file_name": "docs.json"},
                "identity": {"file_name": "identity.json"},
            }
        ),
        encoding="utf-8",
    )
    return folder


def make_cfg(tiny_model_dir, data_dir, **keys):
    from workbench.config import from_dict

    base = {
        "model_name_or_path": str(tiny_model_dir),
        "dataset": "pairs",
        "dataset_dir": str(data_dir),
        "stage": "dpo",
        "max_steps": 8,
        "logging_steps": 1,
        "save_steps": 100,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-2,
        "cutoff_len": 96,
        "lora_rank": 4,
    }
    return from_dict({**base, **keys})


def losses(run_dir: Path) -> list[float]:
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    return [e["loss"] for e in events if e["type"] == "log" and "loss" in e]


# ---- helpers that measure what a user cares about -----------------------------------------
def rendered_pairs(tokenizer):
    from workbench.data import chat_template_for
    from workbench.data.templates import prompt_and_answer

    template, _ = chat_template_for(tokenizer)
    for prompt, chosen, rejected in PAIRS:
        messages = [{"role": "user", "content": prompt}]
        text, good = prompt_and_answer(tokenizer, messages, chosen, template)
        _, bad = prompt_and_answer(tokenizer, messages, rejected, template)
        yield text, good, bad


def answer_logp(model, tokenizer, prompt: str, answer: str) -> float:
    n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    ids = tokenizer(prompt + answer, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logps = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    targets = ids[0, 1:]
    picked = logps.gather(1, targets[:, None])[:, 0]
    return float(picked[n_prompt - 1 :].sum())


def implicit_margins(policy, reference, tokenizer) -> list[float]:
    """DPO's implicit reward of chosen minus rejected, per training pair (0 before training)."""
    margins = []
    for prompt, good, bad in rendered_pairs(tokenizer):
        margins.append(
            (answer_logp(policy, tokenizer, prompt, good) - answer_logp(reference, tokenizer, prompt, good))
            - (answer_logp(policy, tokenizer, prompt, bad) - answer_logp(reference, tokenizer, prompt, bad))
        )
    return margins


# ---- dpo ------------------------------------------------------------------------------------
def test_dpo_lora_prefers_chosen_answers_after_training(tiny_model_dir, data_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench.train import run

    cfg = make_cfg(tiny_model_dir, data_dir, dataset="pairs_sharegpt", max_steps=6)
    final = run(cfg, tmp_path / "dpo", echo=False)
    history = losses(tmp_path / "dpo")
    assert history[0] == pytest.approx(math.log(2), abs=1e-3)  # policy == reference at the start
    assert history[-1] < history[0] * 0.7
    # the result is a plain adapter; the reference (base) is not saved with it
    assert (final / "adapter_model.safetensors").is_file() and not (final / "ref").exists()
    tokenizer = AutoTokenizer.from_pretrained(final)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    policy = PeftModel.from_pretrained(base, final).eval()
    margins = implicit_margins(policy, reference, tokenizer)
    assert sum(m > 0 for m in margins) >= 7, margins
    assert sum(margins) / len(margins) > 1.0, margins


LOSSES = [
    "sigmoid",
    "ipo",
    "hinge",
    "robust",
    "exo_pair",
    "nca_pair",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sigmoid_norm",
    "orpo",
    "simpo",
]


def test_every_offered_pref_loss_is_a_choice_and_known_to_trl():
    from trl import DPOConfig

    from workbench.config import FIELDS
    from workbench.preference import DPO_LOSSES, REFERENCE_FREE_LOSSES

    assert sorted(FIELDS["pref_loss"].metadata["choices"]) == sorted(LOSSES)
    assert sorted(DPO_LOSSES + REFERENCE_FREE_LOSSES) == sorted(LOSSES)
    for loss in DPO_LOSSES:  # trl names every loss it implements in its config's help
        assert f"'{loss}'" in DPOConfig.__dataclass_fields__["loss_type"].metadata["help"]


@pytest.mark.parametrize("loss,use_ref", [(loss, False) for loss in LOSSES] + [("sigmoid", True)])
def test_each_pref_loss_trains(loss, use_ref, tiny_model_dir, data_dir, tmp_path):
    """Full fine-tuning, one step on two pairs: the loss is finite and the weights move. Without
    use_ref_model no reference model is kept (its log-probs are precomputed); orpo and simpo
    never have one."""
    from transformers import AutoModelForCausalLM

    from workbench import data, methods, stages
    from workbench.models import load_tokenizer

    smoothing = 0.01 if loss in ("exo_pair", "robust") else 0.0
    cfg = make_cfg(
        tiny_model_dir,
        data_dir,
        finetuning_type="full",
        pref_loss=loss,
        max_steps=1,
        per_device_train_batch_size=2,
        max_samples=2,
        use_ref_model=use_ref,
        pref_label_smoothing=smoothing,
        learning_rate=1e-3,
    )
    tokenizer = load_tokenizer(cfg.model_name_or_path)
    examples, _ = data.tokenize_rows(tokenizer, data.load_splits(cfg).train, cfg)
    model = methods.apply_method(AutoModelForCausalLM.from_pretrained(tiny_model_dir), cfg)
    before = model.model.layers[0].mlp.up_proj.weight.detach().clone()
    trainer = stages.build_trainer(cfg, model, tokenizer, examples, [], str(tmp_path), torch.float32, [])
    assert (getattr(trainer, "ref_model", None) is not None) == (use_ref and loss not in ("orpo", "simpo"))
    result = trainer.train()
    assert math.isfinite(result.training_loss)
    assert not torch.equal(before, model.model.layers[0].mlp.up_proj.weight)


@pytest.mark.parametrize("pissa", [False, True], ids=["lora", "pissa"])
def test_lora_reference_is_the_starting_model_without_a_second_copy(pissa, tiny_model_dir, data_dir, tmp_path):
    """A fresh LoRA adapter is switched off for the reference (no copy kept). PiSSA rewrites the
    base weights, so its starting adapter is kept as the reference and dropped before saving.
    Either way the first DPO loss is ln 2: policy and reference agree at the start."""
    from transformers import AutoModelForCausalLM

    from workbench import data, methods, stages
    from workbench.models import load_tokenizer

    cfg = make_cfg(
        tiny_model_dir, data_dir, pissa_init=pissa, max_steps=1, per_device_train_batch_size=2, max_samples=2
    )
    tokenizer = load_tokenizer(cfg.model_name_or_path)
    examples, _ = data.tokenize_rows(tokenizer, data.load_splits(cfg).train, cfg)
    model = methods.apply_method(AutoModelForCausalLM.from_pretrained(tiny_model_dir), cfg)
    trainer = stages.build_trainer(cfg, model, tokenizer, examples, [], str(tmp_path), torch.float32, [])
    assert trainer.ref_model is None
    assert ("ref" in model.peft_config) == pissa
    result = trainer.train()
    assert result.training_loss == pytest.approx(math.log(2), abs=1e-4)
    assert "ref" not in model.peft_config


# ---- kto ------------------------------------------------------------------------------------
def test_kto_lora_prefers_liked_answers_after_training(tiny_model_dir, data_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench.train import run

    # the liked/disliked rows are the DPO pairs split up: liked = chosen, disliked = rejected
    cfg = make_cfg(tiny_model_dir, data_dir, stage="kto", dataset="liked", max_steps=6)
    final = run(cfg, tmp_path / "kto", echo=False)
    assert all(math.isfinite(x) for x in losses(tmp_path / "kto"))
    assert (final / "adapter_model.safetensors").is_file() and not (final / "ref").exists()
    tokenizer = AutoTokenizer.from_pretrained(final)
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    policy = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), final).eval()
    margins = implicit_margins(policy, reference, tokenizer)
    assert sum(m > 0 for m in margins) >= 6, margins
    assert sum(margins) > 0, margins


# ---- rm -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rm_run(tiny_model_dir, data_dir, tmp_path_factory) -> Path:
    """A LoRA reward model of the tiny model, run id `rm` in its own saves folder."""
    from workbench.train import run

    saves = tmp_path_factory.mktemp("saves-rm")
    run(make_cfg(tiny_model_dir, data_dir, stage="rm", max_steps=10), saves / "rm", echo=False)
    return saves / "rm"


def test_reward_model_ranks_chosen_above_rejected_and_reloads(tiny_model_dir, rm_run):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from workbench.preference import RewardModel, reward_input_ids

    from conftest import run_cli

    saves, final = rm_run.parent, rm_run / "final"
    reward = RewardModel(rm_run)
    cfg = reward.cfg
    scores = [(reward.score(p, c), reward.score(p, r)) for p, c, r in PAIRS]
    assert all(good > bad for good, bad in scores), scores

    # plain transformers + peft read the same scalar head
    tokenizer = AutoTokenizer.from_pretrained(final)
    base = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    plain = PeftModel.from_pretrained(base, final).eval()
    prompt, good, _ = next(rendered_pairs(tokenizer))
    ids = torch.tensor([reward_input_ids(tokenizer, prompt, good, cfg.cutoff_len)])
    with torch.no_grad():
        assert float(plain(input_ids=ids).logits[0, 0]) == pytest.approx(scores[0][0], abs=1e-4)

    # the CLI scores several responses by run id, in order
    out = run_cli(
        "reward",
        "--run",
        "rm",
        "--prompt",
        PAIRS[0][0],
        "--response",
        PAIRS[0][1],
        "--response",
        PAIRS[0][2],
        env={"WORKBENCH_SAVES": str(saves)},
    )
    assert out.returncode == 0, out.stderr
    values = [float(line.split("\t")[0]) for line in out.stdout.strip().splitlines()]
    assert values == pytest.approx(list(scores[0]), abs=1e-3)


REFUSAL = (
    "run rm is a reward model (stage rm): it scores responses, it does not generate; use `workbench reward --run rm`"
)


def test_chat_eval_and_export_refuse_a_reward_model_naming_it(rm_run, trained_lora_run):
    from workbench import export
    from workbench.chat import list_targets, resolve_pair, resolve_target
    from workbench.evaluate import EvalError, Evaluator, evaluate

    saves = rm_run.parent
    # the chat and evaluate dropdowns do not offer it (a generative run in the same folder is)
    if not (saves / "chat-run").exists():
        # a copy: a link leading out of the saves folder is refused by the workspace rule
        shutil.copytree(trained_lora_run, saves / "chat-run")
    specs = list_targets(saves)
    assert "chat-run" in specs and not [s for s in specs if s.startswith("rm")], specs
    with pytest.raises(ValueError, match=REFUSAL.replace("(", r"\(").replace(")", r"\)")):
        resolve_target("rm", saves)
    with pytest.raises(ValueError, match="reward model"):
        resolve_pair("chat-run", "rm", saves)
    with pytest.raises(EvalError) as err:
        evaluate("rm", evaluator=Evaluator(root=saves), save=False)
    assert REFUSAL in str(err.value)
    with pytest.raises(EvalError, match="reward model"):
        Evaluator(root=saves).target("rm")
    for kind in export.KINDS:
        with pytest.raises(export.ExportError) as err:
            export.run_export(rm_run, kind)
        assert REFUSAL in str(err.value) and "text generators" in str(err.value)
    from workbench import tasks
    from workbench.jobs import JobController

    controller = JobController(rm_run.parent)
    with pytest.raises(export.ExportError, match="reward model"):  # before any background job starts
        tasks.submit(controller, "export", {"run": rm_run.name, "kind": "merged"})
    assert not (rm_run / "exports").exists() and controller.tasks() == []


def test_the_export_tab_does_not_offer_a_reward_model(rm_run, trained_lora_run):
    from types import SimpleNamespace

    from workbench.ui.export_tab import finished_runs

    saves = rm_run.parent
    if not (saves / "chat-run").exists():
        # a copy: a link leading out of the saves folder is refused by the workspace rule
        shutil.copytree(trained_lora_run, saves / "chat-run")
    ctx = SimpleNamespace(saves=saves, controller=SimpleNamespace(run_ids=lambda: ["chat-run", "rm"]))
    assert finished_runs(ctx) == ["chat-run"]


@pytest.mark.parametrize("command", [["chat", "--prompt", "hi"], ["eval"], ["export", "--merge"]])
def test_the_cli_refuses_a_reward_model_for_chat_eval_and_export(command, rm_run):
    from conftest import run_cli

    out = run_cli(command[0], "--run", "rm", *command[1:], env={"WORKBENCH_SAVES": str(rm_run.parent)})
    assert out.returncode != 0
    assert REFUSAL in out.stderr, out.stderr


def test_a_classifier_run_is_refused_for_chat_and_not_listed(tmp_path):
    from workbench.chat import list_targets, resolve_target

    (tmp_path / "sentiment" / "final").mkdir(parents=True)
    (tmp_path / "sentiment" / "config.yaml").write_text("stage: cls\nfinetuning_type: head\n", encoding="utf-8")
    assert [s for s in list_targets(tmp_path) if "sentiment" in s] == []
    with pytest.raises(ValueError, match=r"run sentiment is a sequence classifier \(stage cls\)"):
        resolve_target("sentiment", tmp_path)


def test_reward_cli_refuses_a_run_that_is_not_a_reward_model(saves):
    from conftest import run_cli

    (saves / "chat-run" / "final").mkdir(parents=True)
    (saves / "chat-run" / "config.yaml").write_text("stage: sft\n", encoding="utf-8")
    out = run_cli(
        "reward", "--run", "chat-run", "--prompt", "hi", "--response", "hello", env={"WORKBENCH_SAVES": str(saves)}
    )
    assert out.returncode == 2
    assert "stage 'sft'" in out.stderr and "stage rm" in out.stderr


# ---- pt -------------------------------------------------------------------------------------
def test_pretraining_packs_documents_into_full_blocks_and_loss_falls(tiny_model_dir, data_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from workbench import data, methods, stages
    from workbench.models import load_tokenizer
    from workbench.train import run

    cfg = make_cfg(
        tiny_model_dir, data_dir, stage="pt", dataset="docs", cutoff_len=16, max_steps=8, per_device_train_batch_size=2
    )
    tokenizer = load_tokenizer(cfg.model_name_or_path)
    examples, _ = data.tokenize_rows(tokenizer, data.load_splits(cfg).train, cfg)
    total = sum(len(e["input_ids"]) for e in examples)
    model = methods.apply_method(AutoModelForCausalLM.from_pretrained(tiny_model_dir), cfg)
    trainer = stages.build_trainer(cfg, model, tokenizer, examples, [], str(tmp_path / "x"), torch.float32, [])
    lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    assert len(lengths) < len(examples) or max(lengths) == 16  # documents were joined and cut
    assert all(n == 16 for n in lengths[:-1]) and sum(lengths) == total  # no token lost

    run(cfg, tmp_path / "pt", echo=False)
    history = losses(tmp_path / "pt")
    assert history[-1] < history[0]


# ---- refused combinations -----------------------------------------------------------------
@pytest.mark.parametrize(
    "keys,expected",
    [
        ({"stage": "kto", "per_device_train_batch_size": 1}, "per_device_train_batch_size' must be at least 2"),
        ({"stage": "kto", "pref_loss": "ipo"}, "stage kto takes sigmoid (KTO) or apo_zero"),
        ({"stage": "dpo", "pref_loss": "exo_pair"}, "exo_pair needs 'pref_label_smoothing' above 0"),
        ({"stage": "rm", "finetuning_type": "ia3"}, "stage rm trains a scalar reward head"),
        ({"stage": "dpo", "pref_loss": "kto"}, "'pref_loss' is 'kto'; allowed: sigmoid"),
    ],
)
def test_bad_preference_combinations_are_refused(keys, expected):
    from workbench.config import ConfigError, from_dict

    with pytest.raises(ConfigError) as err:
        from_dict(keys)
    assert expected in str(err.value)


def test_dpo_on_a_conversation_dataset_names_it_and_the_missing_columns(tiny_model_dir, data_dir):
    from workbench import data

    cfg = make_cfg(tiny_model_dir, data_dir, dataset="identity")
    with pytest.raises(data.DataError) as err:
        data.load_splits(cfg)
    message = str(err.value)
    assert "'identity'" in message and "'chosen'" in message and "'rejected'" in message


@pytest.mark.parametrize(
    "keys", [{"finetuning_type": "full", "learning_rate": 1e-3}, {"quantization_bit": 4}], ids=["full", "qlora4"]
)
def test_reward_model_full_and_qlora_train_and_score(keys, tiny_model_dir, data_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from workbench.preference import RewardModel, reward_input_ids
    from workbench.train import run

    cfg = make_cfg(tiny_model_dir, data_dir, stage="rm", max_steps=2, **keys)
    final = run(cfg, tmp_path / "rm", echo=False)
    assert all(math.isfinite(x) for x in losses(tmp_path / "rm"))
    reward = RewardModel(tmp_path / "rm")
    value = reward.score(PAIRS[0][0], PAIRS[0][1])
    assert math.isfinite(value)
    if keys.get("finetuning_type") == "full":  # a whole model folder that plain transformers loads
        plain = AutoModelForSequenceClassification.from_pretrained(final).eval()
        prompt, good, _ = next(rendered_pairs(reward.tokenizer))
        ids = torch.tensor([reward_input_ids(reward.tokenizer, prompt, good, cfg.cutoff_len)])
        with torch.no_grad():
            assert float(plain(input_ids=ids).logits[0, 0]) == pytest.approx(value, abs=1e-4)
