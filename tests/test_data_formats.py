"""Every input format and file type reads into the same canonical rows; every bad input is
refused with a message that names the file, the row and the field."""

import json

import pandas as pd
import pytest

from workbench.data import DataError, read_file

ROLES = {"system", "user", "assistant", "tool"}


def write_json(path, rows):
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


ALPACA = [
    {"instruction": "Add", "input": "2 and 3", "output": "5", "system": "Be brief", "history": [["hi", "hello"]]},
    {"instruction": "Say hi", "output": "hi"},
]
SHAREGPT = [
    {
        "conversations": [
            {"from": "system", "value": "You are helpful."},
            {"from": "human", "value": "Weather in Paris?"},
            {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "Paris"}}'},
            {"from": "observation", "value": '{"temp": 21}'},
            {"from": "gpt", "value": "It is 21 degrees."},
        ],
        "tools": '[{"name": "weather"}]',
    }
]
OPENAI = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]
PROMPT_COMPLETION = [{"prompt": "2+2=", "completion": "4"}]
PREFERENCE = [{"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Berlin."}]
SHAREGPT_PREFERENCE = [
    {
        "conversations": [{"from": "human", "value": "Capital of France?"}],
        "chosen": {"from": "gpt", "value": "Paris."},
        "rejected": {"from": "gpt", "value": "Rome."},
    }
]
KTO = [
    {"prompt": "Capital of France?", "completion": "Paris.", "label": True},
    {"prompt": "Capital of Spain?", "completion": "Lisbon.", "label": False},
]
CLASSIFICATION = [{"text": "great film", "label": "positive"}, {"text": "dull", "label": "negative"}]


@pytest.mark.parametrize(
    "rows, fmt, kind",
    [
        (ALPACA, "alpaca", "conversation"),
        (SHAREGPT, "sharegpt", "conversation"),
        (OPENAI, "openai", "conversation"),
        (PROMPT_COMPLETION, "prompt_completion", "conversation"),
        (PREFERENCE, "preference", "preference"),
        (SHAREGPT_PREFERENCE, "preference", "preference"),
        (KTO, "kto", "kto"),
        (CLASSIFICATION, "classification", "classification"),
        ([{"text": "a document"}], "text", "text"),
    ],
)
def test_each_format_is_detected_and_normalized(tmp_path, rows, fmt, kind):
    out, detected = read_file(write_json(tmp_path / "d.json", rows))
    assert detected == fmt and all(r["kind"] == kind for r in out) and len(out) == len(rows)
    for row in out:
        assert {m["role"] for m in row.get("messages", [])} <= ROLES


def test_alpaca_system_history_and_input_become_turns(tmp_path):
    rows, _ = read_file(write_json(tmp_path / "a.json", ALPACA))
    assert rows[0]["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "Add\n2 and 3"},
        {"role": "assistant", "content": "5"},
    ]


def test_sharegpt_roles_are_mapped_to_real_roles(tmp_path):
    rows, _ = read_file(write_json(tmp_path / "s.json", SHAREGPT))
    assert [m["role"] for m in rows[0]["messages"]] == ["system", "user", "assistant", "tool", "assistant"]
    assert rows[0]["tools"] == '[{"name": "weather"}]'


def test_role_names_of_common_dumps_are_understood(tmp_path):
    turns = [
        {"from": "prompter", "value": "hi"},
        {"from": "chatgpt", "value": "hello"},
        {"from": "human", "value": "and?"},
        {"from": "model", "value": "done"},
    ]
    rows, _ = read_file(write_json(tmp_path / "d.json", [{"conversations": turns}]))
    assert [m["role"] for m in rows[0]["messages"]] == ["user", "assistant", "user", "assistant"]


def test_kto_labels_are_booleans(tmp_path):
    rows, _ = read_file(write_jsonl(tmp_path / "k.jsonl", KTO))
    assert [r["label"] for r in rows] == [True, False]
    (tmp_path / "k.csv").write_text("prompt,completion,label\na,b,1\nc,d,0\ne,f,yes\n", encoding="utf-8")
    rows, fmt = read_file(tmp_path / "k.csv")
    assert fmt == "kto" and [r["label"] for r in rows] == [True, False, True]


def test_every_file_type_reads_the_same_rows(tmp_path):
    expected, _ = read_file(write_json(tmp_path / "p.json", PREFERENCE * 3))
    write_jsonl(tmp_path / "p.jsonl", PREFERENCE * 3)
    pd.DataFrame(PREFERENCE * 3).to_csv(tmp_path / "p.csv", index=False)
    pd.DataFrame(PREFERENCE * 3).to_parquet(tmp_path / "p.parquet")
    for suffix in ("jsonl", "csv", "parquet"):
        rows, fmt = read_file(tmp_path / f"p.{suffix}")
        assert fmt == "preference" and rows == expected, suffix


def test_csv_cells_may_hold_conversations_as_json(tmp_path):
    pd.DataFrame({"messages": [json.dumps(OPENAI[0]["messages"])]}).to_csv(tmp_path / "m.csv", index=False)
    rows, fmt = read_file(tmp_path / "m.csv")
    assert fmt == "openai" and rows[0]["messages"][1]["content"] == "hello"


def test_parquet_with_nested_conversations(tmp_path):
    pd.DataFrame(SHAREGPT).to_parquet(tmp_path / "s.parquet")
    rows, fmt = read_file(tmp_path / "s.parquet")
    assert fmt == "sharegpt" and [m["role"] for m in rows[0]["messages"]][-1] == "assistant"


def test_plain_text_by_blank_line_blocks_or_by_line(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("first line\nstill first\n\nsecond block\n", encoding="utf-8")
    assert [r["text"] for r in read_file(path, text_split="blank")[0]] == ["first line\nstill first", "second block"]
    assert len(read_file(path, text_split="line")[0]) == 3
    assert len(read_file(path)[0]) == 2  # auto: blocks, since there are blank lines


def test_format_override_and_column_mapping(tmp_path):
    pd.DataFrame({"question": ["2+2?", "3+3?"], "answer": ["4", "6"]}).to_csv(tmp_path / "qa.csv", index=False)
    with pytest.raises(DataError, match="qa.csv, row 1: cannot tell the format"):
        read_file(tmp_path / "qa.csv")
    rows, fmt = read_file(tmp_path / "qa.csv", column_map="instruction=question, output=answer")
    assert fmt == "alpaca" and rows[1]["messages"][-1] == {"role": "assistant", "content": "6"}
    rows, fmt = read_file(
        tmp_path / "qa.csv", fmt="prompt_completion", column_map={"prompt": "question", "completion": "answer"}
    )
    assert fmt == "prompt_completion" and rows[0]["messages"][0]["content"] == "2+2?"
    # a classification file read as raw text for pretraining
    rows, fmt = read_file(write_json(tmp_path / "c.json", CLASSIFICATION), fmt="text")
    assert fmt == "text" and rows[0] == {"text": "great film", "kind": "text"}


def test_bom_and_crlf_are_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"prompt": "a", "completion": "b"}\r\n{"prompt": "c", "completion": "d"}\r\n')
    rows, _ = read_file(path)
    assert [r["messages"][1]["content"] for r in rows] == ["b", "d"]
    csv = tmp_path / "crlf.csv"
    csv.write_bytes(b"\xef\xbb\xbftext,label\r\ngood,pos\r\nbad,neg\r\n")
    rows, fmt = read_file(csv)
    assert fmt == "classification" and rows[1]["label"] == "neg"


def bad(tmp_path, name, content: bytes | str):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


@pytest.mark.parametrize(
    "name, content, message",
    [
        (
            "broken.json",
            '[{"instruction": "a", "output": "b"},\n {"instruction": ',
            r"broken.json: malformed JSON at line 2",
        ),
        ("broken.jsonl", '{"text": "a"}\n{"text": \n', r"broken.jsonl, row 2: malformed JSON on line 2"),
        ("cells.csv", "text,label\ngood,pos\nbad,neg,extra\n", r"cells.csv, row 3: has 3 cells but the header has 2"),
        ("empty.json", "", r"empty.json: the file is empty"),
        ("blank.txt", "\n\n  \n", r"blank.txt: the file is empty"),
        ("nothing.json", "[]", r"nothing.json: the file has no rows"),
        (
            "missing.json",
            '[{"instruction": "a", "output": "b"}, {"instruction": "c"}]',
            r"missing.json, row 2, field 'output': is missing",
        ),
        (
            "emptyfield.jsonl",
            '{"prompt": "a", "completion": "b"}\n{"prompt": "a", "completion": "  "}\n',
            r"emptyfield.jsonl, row 2, field 'completion': is empty",
        ),
        (
            "nonstring.json",
            '[{"text": "a", "label": "x"}, {"text": ["a"], "label": "y"}]',
            r"nonstring.json, row 2, field 'text': must be text, got list",
        ),
        (
            "mixed.jsonl",
            '{"instruction": "a", "output": "b"}\n{"messages": [{"role": "user", "content": "hi"}]}\n',
            r"mixed.jsonl, row 2: looks like openai, but row 1 is alpaca",
        ),
        (
            "roles.json",
            '[{"conversations": [{"from": "human", "value": "hi"}, {"from": "robot", "value": "yo"}]}]',
            r"roles.json, row 1, field 'conversations\[1\]': has unknown role 'robot'",
        ),
        ("latin1.csv", b"text,label\ncaf\xe9,pos\n", r"latin1.csv: not UTF-8 text \(byte 0xe9 at line 2\)"),
        (
            "noreply.json",
            '[{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]}]',
            r"noreply.json, row 1, field 'messages\[1\]': is an empty assistant reply",
        ),
        ("unknown.json", '[{"question": "a", "answer": "b"}]', r"unknown.json, row 1: cannot tell the format"),
        (
            "badcell.csv",
            'messages\n"[{""role"": ""user"""\n',
            r"badcell.csv, row 2, field 'messages': holds malformed JSON",
        ),
        (
            "kto.json",
            '[{"prompt": "a", "completion": "b", "label": true}, {"prompt": "a", "completion": "b", "label": "maybe"}]',
            r"kto.json, row 2, field 'label': must be true or false",
        ),
        ("scalar.json", "[1, 2]", r"scalar.json, row 1: each row must be an object"),
        ("data.xlsx", "x", r"data.xlsx: unsupported file type '.xlsx'"),
        ("damaged.parquet", b"PAR1 not really", r"damaged.parquet: cannot read Parquet"),
    ],
)
def test_bad_input_names_file_row_and_field(tmp_path, name, content, message):
    with pytest.raises(DataError, match=message):
        read_file(bad(tmp_path, name, content))


def test_a_file_over_the_upload_limit_is_refused(tmp_path):
    path = bad(tmp_path, "big.jsonl", '{"text": "' + "x" * 2_000_000 + '"}\n')
    with pytest.raises(DataError, match=r"big.jsonl: the file is 1.9 MB, over the 1 MB upload limit"):
        read_file(path, max_mb=1)


def test_bad_column_mappings_are_explained(tmp_path):
    path = write_json(tmp_path / "qa.json", [{"question": "a", "answer": "b"}])
    with pytest.raises(
        DataError,
        match=r"qa.json, field 'reply': the column mapping takes 'reply' as output, "
        r"but the file has no such column \(columns: answer, question\)",
    ):
        read_file(path, column_map="instruction=question, output=reply")
    with pytest.raises(DataError, match="unknown column 'query'"):
        read_file(path, column_map="query=question")
    with pytest.raises(DataError, match="must be written standard=column"):
        read_file(path, column_map="instruction")
    with pytest.raises(DataError, match="unknown format 'yaml'"):
        read_file(path, fmt="yaml")
