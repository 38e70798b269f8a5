"""Read a dataset file into a list of records (dicts), with errors that name file and row."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

SUPPORTED_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".txt")
TEXT_SPLITS = ("auto", "blank", "line")
MAX_UPLOAD_MB = 100  # the same limit the web server enforces on uploads
# columns that hold lists or objects; a CSV cell can only carry them as JSON text
JSON_COLUMNS = ("conversations", "messages", "history", "chosen", "rejected", "tools")


class DataError(ValueError):
    """Bad input data. The message names the file, and the row and field where known."""

    def __init__(self, message: str, file: str | None = None, row: int | None = None, field: str | None = None):
        self.file, self.row, self.field, self.detail = file, row, field, message
        where = []
        if file:
            where.append(Path(file).name)
        if row is not None:
            where.append(f"row {row}")
        if field:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


def read_text_file(path: Path) -> str:
    """UTF-8 text; a BOM is dropped and CRLF line ends are folded to LF."""
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError("the file is empty", str(path))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(
            f"not UTF-8 text (byte 0x{raw[err.start]:02x} at line {line}); save the file as UTF-8", str(path)
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def check_size(path: str | Path, max_mb: float = MAX_UPLOAD_MB) -> None:
    size = Path(path).stat().st_size
    if size > max_mb * 1024 * 1024:
        raise DataError(f"the file is {size / 1024 / 1024:.1f} MB, over the {max_mb:g} MB upload limit", str(path))


def read_records(
    path: str | Path, text_split: str = "auto", limit: int | None = None, totals: dict | None = None
) -> list[dict]:
    """Records of a JSON/JSONL/CSV/Parquet/TXT file.

    text_split applies to .txt: 'line' (one document per line), 'blank' (one per blank-line
    separated block) or 'auto' (blocks when the file has blank lines, else lines).
    limit: only the first `limit` records are parsed and returned (a preview's sample); the
    file's whole record count is then put in totals[str(path)]."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", str(path))
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataError(f"unsupported file type '{suffix}'; use one of {', '.join(SUPPORTED_SUFFIXES)}", str(path))
    if limit is not None:
        records, total = _sample(path, suffix, text_split, limit)
        if totals is not None:
            totals[str(path)] = total
    else:
        reader = {
            ".json": _read_json,
            ".jsonl": _read_jsonl,
            ".csv": _read_csv,
            ".parquet": _read_parquet,
            ".txt": lambda p: _read_txt(p, text_split),
        }[suffix]
        try:
            records = reader(path)
        except RecursionError:
            raise DataError("nested too deeply to read", str(path)) from None
    if not records:
        raise DataError("the file has no rows", str(path))
    for index, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise DataError(
                f"each row must be an object with named fields, got {type(record).__name__}", str(path), index
            )
    return records


SAMPLE_BYTES = 1024 * 1024  # a preview's sample also stops at about this much text


def _sample(path: Path, suffix: str, text_split: str, limit: int) -> tuple[list, int]:
    """The first `limit` records (fewer when they hold more than SAMPLE_BYTES of text, at least
    one) and the file's record count, without parsing every row where the format allows it
    (JSONL lines, CSV rows, Parquet batches)."""
    try:
        if suffix == ".jsonl":
            return _sample_jsonl(path, limit)
        if suffix == ".csv":
            records, total = _sample_csv(path, limit)
        elif suffix == ".parquet":
            records, total = _sample_parquet(path, limit)
        else:
            records = _read_json(path) if suffix == ".json" else _read_txt(path, text_split)
            records, total = records[:limit], len(records)
    except RecursionError:
        raise DataError("nested too deeply to read", str(path)) from None
    kept, size = [], 0
    for record in records:
        size += len(str(record))
        if kept and size > SAMPLE_BYTES:
            break
        kept.append(record)
    return kept, total


def _sample_jsonl(path: Path, limit: int) -> tuple[list, int]:
    rows, total, size = [], 0, 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            total += 1
            size += len(raw)
            if len(rows) >= limit or (rows and size > SAMPLE_BYTES):
                continue  # counted only
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise DataError(f"not UTF-8 text (line {number}); save the file as UTF-8", str(path)) from None
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(
                    f"malformed JSON on line {number}, column {err.colno}: {err.msg}", str(path), number
                ) from None
    if total == 0:
        raise DataError("the file is empty", str(path))
    return rows, total


def _sample_csv(path: Path, limit: int) -> tuple[list, int]:
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        head = handle.read(4096)
        handle.seek(0)
        try:
            dialect = csv.Sniffer().sniff(head, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        reader = csv.reader(handle, dialect)
        kept, total = [], 0
        try:
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                total += 1
                if len(kept) <= limit:
                    kept.append(row)
        except csv.Error as err:
            raise DataError(f"malformed CSV: {err}", str(path), reader.line_num) from None
    text = io.StringIO()
    csv.writer(text, dialect).writerows(kept)
    # the kept rows are checked by the same code as a whole file
    return _csv_records(text.getvalue(), path, dialect), max(0, total - 1)


def _sample_parquet(path: Path, limit: int) -> tuple[list, int]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        total = parquet.metadata.num_rows
        batch = next(parquet.iter_batches(batch_size=limit), None)
    except Exception as err:  # noqa: BLE001 - pyarrow raises several error types for a damaged file
        raise DataError(f"cannot read Parquet: {err}", str(path)) from None
    rows = batch.to_pylist() if batch is not None else []
    return [_plain(r) for r in rows], total


def _read_json(path: Path) -> list:
    text = read_text_file(path)
    stripped = text.lstrip()
    if stripped.startswith("{") and "\n{" in stripped and not stripped.rstrip().endswith("}]"):
        # a .json file holding one object per line is JSONL in disguise
        try:
            return _parse_jsonl(text, path)
        except DataError:
            pass
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}", str(path)) from None
    if isinstance(data, dict):
        # {"train": [...]} or {"data": [...]}: take the single list inside
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
        return [data]
    if not isinstance(data, list):
        raise DataError("expected a list of rows", str(path))
    return data


def _read_jsonl(path: Path) -> list:
    return _parse_jsonl(read_text_file(path), path)


def _parse_jsonl(text: str, path: Path) -> list:
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise DataError(
                f"malformed JSON on line {number}, column {err.colno}: {err.msg}", str(path), number
            ) from None
    return rows


def _read_csv(path: Path) -> list:
    text = read_text_file(path)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return _csv_records(text, path, dialect)


def _csv_records(text: str, path: Path, dialect) -> list:
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        rows = list(reader)
    except csv.Error as err:
        raise DataError(f"malformed CSV: {err}", str(path), reader.line_num) from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise DataError("a CSV needs a header line and at least one row", str(path))
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header) or any(not h for h in header):
        raise DataError(f"the header has empty or repeated column names: {header}", str(path), 1)
    records = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(f"has {len(row)} cells but the header has {len(header)}", str(path), number)
        record = dict(zip(header, row))
        for key in JSON_COLUMNS:
            if key in record:
                record[key] = _json_cell(record[key], path, number, key)
        records.append(record)
    return records


def _json_cell(cell: str, path: Path, row: int, key: str):
    """A CSV cell that holds a list or an object written as JSON."""
    text = cell.strip()
    if not text or text[0] not in "[{":
        return cell  # plain text (e.g. a chosen answer): the format decides if that is fine
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"holds malformed JSON ({err.msg} at column {err.colno})", str(path), row, key) from None


def _read_parquet(path: Path) -> list:
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises several error types for a damaged file
        raise DataError(f"cannot read Parquet: {err}", str(path)) from None
    return [_plain(r) for r in frame.to_dict(orient="records")]


def _plain(value):
    """numpy arrays and scalars from Parquet into plain lists and Python scalars."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _read_txt(path: Path, text_split: str) -> list:
    text = read_text_file(path)
    if text_split not in TEXT_SPLITS:
        raise DataError(f"text_split must be auto, line or blank, got {text_split!r}", str(path))
    if text_split == "auto":
        text_split = "blank" if "\n\n" in text.strip() else "line"
    parts = text.split("\n\n") if text_split == "blank" else text.split("\n")
    return [{"text": p.strip()} for p in parts if p.strip()]
