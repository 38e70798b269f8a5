"""GGUF files the way users run them: loaded by llama.cpp itself (xllamacpp), with the metadata it
needs (pre-tokenizer name, special tokens, chat template, context length), every type the `gguf`
package writes, and a parity report on every export kind."""

import json
import shutil

import gguf
import pytest

from workbench import export
from workbench.cli import main as cli_main
from workbench.export import gguf_file, parity

from conftest import ROOT

xllamacpp = pytest.importorskip("xllamacpp")


def fields(path):
    reader = gguf.GGUFReader(str(path))
    return {
        key: field.contents()
        for key, field in reader.fields.items()
        if not key.startswith(("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type"))
    }


def chat(path, text="Who are you?", max_tokens=8):
    server = parity.llama_cpp_server(path, threads=1)
    try:
        return server.handle_chat_completions(
            {"messages": [{"role": "user", "content": text}], "max_tokens": max_tokens, "temperature": 0}
        )
    finally:
        del server


@pytest.fixture(scope="module")
def gguf_exports(trained_lora_run):
    """f16 and q8_0 with their parity reports; the other types without (same code path)."""
    made = {q: export.export_gguf(trained_lora_run, q) for q in ("f16", "q8_0")}
    for qtype in ("bf16", "q4_0", "q4_1", "q5_0", "q5_1"):
        made[qtype] = export.export_gguf(trained_lora_run, qtype, parity=False)
    return made


def test_every_gguf_type_loads_in_llama_cpp_and_answers(gguf_exports):
    assert set(gguf_exports) == set(export.GGUF_TYPES)
    for qtype, result in gguf_exports.items():
        reply = chat(result.archive)
        assert reply["choices"][0]["message"]["content"], (qtype, reply)
        assert reply["usage"]["completion_tokens"] > 0
        assert fields(result.archive)["general.file_type"] == int(gguf_file.file_type(qtype))


def test_gguf_metadata_is_what_llama_cpp_expects(gguf_exports, tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    meta = fields(gguf_exports["f16"].archive)
    # the tiny model did not come from a GGUF file: its tokenizer is recognised by hash
    assert meta["tokenizer.ggml.pre"] == "smollm"
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert meta["tokenizer.ggml.eos_token_id"] == im_end and meta["tokenizer.ggml.eot_token_id"] == im_end
    assert meta["tokenizer.ggml.bos_token_id"] == tokenizer.bos_token_id
    assert meta["tokenizer.ggml.padding_token_id"] == tokenizer.pad_token_id
    assert meta["tokenizer.chat_template"] == tokenizer.chat_template
    assert meta["llama.context_length"] == 512
    # the Modelfile stops where the GGUF file does, with the template's default system message
    modelfile = (gguf_exports["f16"].folder / "Modelfile").read_text()
    assert 'PARAMETER stop "<|im_end|>"' in modelfile and "<|im_start|>{{ .Role }}" in modelfile
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM' in modelfile


def test_gguf_parity_in_llama_cpp(gguf_exports):
    f16 = gguf_exports["f16"].parity
    assert f16["status"] == "ok", f16["summary"]
    assert f16["runtime"].startswith("llama.cpp") and f16["prompts"] == 5
    assert f16["first_tokens_same"] >= 4 and f16["max_diff"] < 0.5
    saved = json.loads((gguf_exports["f16"].folder / "parity.json").read_text())
    assert saved["summary"] == f16["summary"] and len(saved["details"]) == 5
    card = (gguf_exports["q8_0"].folder / "README.md").read_text()
    assert "## Parity with the trained model" in card and "llama.cpp" in card
    assert gguf_exports["q8_0"].parity["first_tokens_same"] >= 3


def test_the_pre_tokenizer_of_the_embedded_model_comes_from_its_gguf(tiny_model_dir):
    from transformers import AutoTokenizer

    from workbench.config import DEFAULT_MODEL

    assert gguf_file.base_gguf_pre(DEFAULT_MODEL) == "smollm"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert gguf_file.pre_tokenizer_name(tokenizer, DEFAULT_MODEL) == "smollm"
    assert gguf_file.pre_tokenizer_name(tokenizer, str(tiny_model_dir)) == "smollm"  # by hash


def test_an_unknown_tokenizer_is_refused_before_a_file_is_written(tmp_path, tiny_model_dir):
    """A tokenizer llama.cpp does not know would give a file it refuses to load: no file at all."""
    from workbench.config import from_dict
    from workbench.train import run

    model = tmp_path / "odd-tokenizer-model"
    shutil.copytree(tiny_model_dir, model)
    data = json.loads((model / "tokenizer.json").read_text())
    data["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    (model / "tokenizer.json").write_text(json.dumps(data))
    run_dir = tmp_path / "saves" / "odd"
    run(
        from_dict(
            {
                "model_name_or_path": str(model),
                "dataset": "identity",
                "dataset_dir": str(ROOT / "data"),
                "max_steps": 1,
                "save_steps": 100,
                "cutoff_len": 64,
                "logging_steps": 1,
            }
        ),
        run_dir,
        echo=False,
    )
    with pytest.raises(export.ExportError, match="does not know this tokenizer's pre-tokenizer"):
        export.export_gguf(run_dir, "f16")
    assert not (run_dir / "exports" / "gguf-f16").exists()
    assert not list((run_dir / "exports").glob(".*tmp"))
    # k-quants are refused by name, pointing at llama.cpp's quantizer
    with pytest.raises(export.ExportError, match="llama-quantize"):
        gguf_file.write_gguf(None, None, tmp_path / "x.gguf", "q4_k_m")


def test_merged_export_parity_default_dtype_sizes_and_file_modes(trained_lora_run, tmp_path):
    # dtype auto: the tiny base is fp32
    result = export.export_merged(trained_lora_run, out_dir=tmp_path / "merged", with_zip=False)
    report = result.parity
    assert report["number_format"] == "fp32"
    assert report["status"] == "ok" and report["first_tokens_same"] == 5 and report["max_diff"] < 1e-3
    assert report["runtime"] == "transformers (fp32)"
    modes = {p.name: p.stat().st_mode & 0o777 for p in result.folder.iterdir()}
    assert len(set(modes.values())) == 1, modes  # model.safetensors is no exception
    weights = (result.folder / "model.safetensors").stat().st_size
    expected = export.expected_size(trained_lora_run, "merged", dtype="fp32")
    assert abs(expected - weights) / weights < 0.05
    assert export.expected_size(trained_lora_run, "merged", dtype="fp16") == pytest.approx(expected / 2, rel=0.01)
    assert export.expected_size(trained_lora_run, "gguf", gguf_type="q4_0") < export.expected_size(
        trained_lora_run, "gguf", gguf_type="q8_0"
    )


def test_the_default_model_exports_merged_in_bf16(trained_lora_run):
    from workbench.config import DEFAULT_MODEL
    from workbench.export.source import RunSource, base_dtype, run_source

    src = RunSource(trained_lora_run, trained_lora_run / "final", {"model_name_or_path": DEFAULT_MODEL})
    assert base_dtype(src) == "bf16"
    assert base_dtype(run_source(trained_lora_run)) == "fp32"


def test_require_parity_makes_the_command_fail_when_an_export_disagrees(
    trained_lora_run, tmp_path, monkeypatch, capsys
):
    argv = ["export", "--run", str(trained_lora_run), "--merge", "--dtype", "fp32", "--out", str(tmp_path / "m")]
    assert cli_main(argv + ["--require-parity"]) == 0
    assert "parity (transformers (fp32)" in capsys.readouterr().out
    # a format whose tolerance nothing meets stands for an export that answers differently
    monkeypatch.setitem(parity.TOLERANCE, "fp32", (1.0, -1.0))
    assert cli_main(argv) == 0  # reported, not fatal
    assert "BEYOND" in capsys.readouterr().out
    assert cli_main(argv + ["--require-parity"]) == 3
    assert "--require-parity" in capsys.readouterr().err
    saved = json.loads((tmp_path / "m" / "parity.json").read_text())
    assert saved["status"] == "beyond" and not saved["ok"]


def test_without_llama_cpp_the_gguf_report_says_it_was_not_checked(trained_lora_run, tmp_path, monkeypatch):
    monkeypatch.setattr(
        parity, "llama_cpp_available", lambda: "llama.cpp is not installed here (pip install xllamacpp)"
    )
    result = export.export_gguf(trained_lora_run, "q8_0", out_dir=tmp_path / "g")
    assert result.parity["status"] == "unchecked" and "pip install xllamacpp" in result.parity["summary"]
    assert (
        cli_main(
            [
                "export",
                "--run",
                str(trained_lora_run),
                "--gguf",
                "q8_0",
                "--out",
                str(tmp_path / "h"),
                "--require-parity",
            ]
        )
        == 3
    )


def test_export_tab_shows_sizes_before_starting_and_parity_in_colour(trained_lora_run, gguf_exports):
    from workbench.ui.export_tab import list_html, parity_cell, sizes_html

    line = sizes_html(trained_lora_run, "gguf", "auto", "4bit", "q8_0", "en")
    assert "Expected size:" in line and "<b>q8_0 ≈" in line and "q4_0 ≈" in line
    assert "<b>auto ≈" in sizes_html(trained_lora_run, "merged", "auto", "4bit", "q8_0", "en")
    table = list_html(trained_lora_run, "en")
    assert "Parity with the trained model" in table and "data-status='ok'" in table
    beyond = parity_cell(
        {
            "status": "beyond",
            "first_tokens_same": 1,
            "prompts": 5,
            "token_agreement": 0.1,
            "max_diff": 3.0,
            "summary": "s",
        },
        "zh",
    )
    assert "#cf222e" in beyond and "差异" in beyond


def test_parity_replays_the_runs_held_out_rows_else_built_in_prompts(tmp_path):
    from workbench.export.source import RunSource

    held_out = RunSource(tmp_path, tmp_path, {"dataset": "identity", "dataset_dir": str(ROOT / "data"), "val_size": 5})
    chats, origin = parity.parity_prompts(held_out)
    assert origin == "held-out rows (validation)" and len(chats) == 5
    assert all(chat[-1]["role"] == "user" for chat in chats)
    chats, origin = parity.parity_prompts(
        RunSource(tmp_path, tmp_path, {"dataset": "identity", "dataset_dir": str(ROOT / "data")})
    )
    assert origin.startswith("built-in prompts") and chats[0] == [
        {"role": "user", "content": parity.BUILTIN_PROMPTS[0]}
    ]
