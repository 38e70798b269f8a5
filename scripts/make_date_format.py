"""Generate the shipped skill dataset workbench/data/shipped/date_format.json (+ its held-out test file).

Each row asks to rewrite one date, written in one of many styles, as ISO 8601 (YYYY-MM-DD).
The model must read the day, month and year out of the text and reorder and pad them: a skill
that needs generalisation, not a memorised answer. Train and test dates never overlap.

    python scripts/make_date_format.py        # rewrites workbench/data/shipped/date_format*.json (fixed seed)
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

SEED = 20240305
N_TRAIN = 240
N_TEST = 60
DATA = Path(__file__).resolve().parent.parent / "workbench" / "data" / "shipped"

MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
ORDINAL_WORDS = [
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
    "twentieth",
    "twenty-first",
    "twenty-second",
    "twenty-third",
    "twenty-fourth",
    "twenty-fifth",
    "twenty-sixth",
    "twenty-seventh",
    "twenty-eighth",
    "twenty-ninth",
    "thirtieth",
    "thirty-first",
]
ZH_DIGITS = "〇一二三四五六七八九"

INSTRUCTIONS_EN = [
    "Rewrite this date in ISO format (YYYY-MM-DD).",
    "Convert the date to YYYY-MM-DD.",
    "Write this date as YYYY-MM-DD.",
]
INSTRUCTIONS_ZH = [
    "把这个日期改写成 YYYY-MM-DD 格式。",
    "将日期转换为 ISO 格式（YYYY-MM-DD）。",
]


def ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def zh_number(n: int) -> str:
    """Chinese numerals for a day or month (1-31): 五, 十, 十二, 二十一, 三十."""
    tens, ones = divmod(n, 10)
    text = "" if tens == 0 else "十" if tens == 1 else ZH_DIGITS[tens] + "十"
    return text + (ZH_DIGITS[ones] if ones else "")


# Each style: (name, language of the instruction, function date -> text)
STYLES = [
    ("month_day_year", "en", lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}"),
    ("month_ordinal_year", "en", lambda d: f"{MONTHS[d.month - 1]} {ordinal(d.day)}, {d.year}"),
    ("day_month_year", "en", lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}"),
    ("short_month", "en", lambda d: f"{MONTHS[d.month - 1][:3]} {d.day} {d.year}"),
    ("day_short_month", "en", lambda d: f"{d.day}-{MONTHS[d.month - 1][:3]}-{d.year}"),
    ("words", "en", lambda d: f"the {ORDINAL_WORDS[d.day - 1]} of {MONTHS[d.month - 1]} {d.year}"),
    ("weekday", "en", lambda d: f"{WEEKDAYS[d.weekday()]}, {MONTHS[d.month - 1]} {d.day}, {d.year}"),
    ("slash_day_first", "en", lambda d: f"{d.day}/{d.month}/{d.year} (day first)"),
    ("slash_month_first", "en", lambda d: f"{d.month}/{d.day}/{d.year} (month first)"),
    ("dots", "en", lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}"),
    ("compact", "en", lambda d: f"{d.year}{d.month:02d}{d.day:02d}"),
    ("zh_digits", "zh", lambda d: f"{d.year}年{d.month}月{d.day}日"),
    ("zh_slash", "zh", lambda d: f"{d.year}/{d.month}/{d.day}"),
    (
        "zh_numerals",
        "zh",
        lambda d: "".join(ZH_DIGITS[int(c)] for c in str(d.year)) + f"年{zh_number(d.month)}月{zh_number(d.day)}日",
    ),
]


def random_date(rng: random.Random) -> dt.date:
    start, end = dt.date(1950, 1, 1), dt.date(2035, 12, 31)
    return start + dt.timedelta(days=rng.randrange((end - start).days + 1))


def make_row(rng: random.Random, day: dt.date, style_index: int) -> dict:
    name, lang, render = STYLES[style_index]
    instruction = rng.choice(INSTRUCTIONS_ZH if lang == "zh" else INSTRUCTIONS_EN)
    return {"instruction": instruction, "input": render(day), "output": day.isoformat(), "style": name}


def build() -> tuple[list[dict], list[dict]]:
    rng = random.Random(SEED)
    seen: set[dt.date] = set()
    rows = []
    while len(rows) < N_TRAIN + N_TEST:
        day = random_date(rng)
        if day in seen:
            continue
        seen.add(day)
        # styles in turn, so every style is equally common in train and test
        rows.append(make_row(rng, day, len(rows) % len(STYLES)))
    rng.shuffle(rows)
    return rows[N_TEST:], rows[:N_TEST]


def main() -> None:
    train, test = build()
    for name, rows in (("date_format.json", train), ("date_format_test.json", test)):
        (DATA / name).write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {len(rows)} rows to {DATA / name}")


if __name__ == "__main__":
    main()
