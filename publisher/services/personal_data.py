"""Personal data in a text: resident ID numbers, mainland mobile numbers, bank card numbers.

Pure functions over one string, no database. Each match carries its position in that string
and a masked form; the number itself is never handed on in clear. What counts:

- a resident ID number (GB 11643-1999): 6 digits of region (a real province code), the birth
  date (a real day, not in the future), 3 digits of sequence and the ISO 7064 MOD 11-2 check
  character (digit or X). A number of that shape with a wrong check character is not taken
  for an ID number (it is most likely some other number), nor for a bank card. The 15-digit
  numbers issued before 1999 (region, YYMMDD, sequence; no check digit) count too. An
  18-digit number may be written in groups 6-8-4 (region, birth date, the rest), the same
  separator between each: a space, `.`, a hyphen or dash (`-`, `–`, `—`, `－`, …);
- a mainland mobile number: 1[3-9] and 9 more digits, optionally after +86/0086/86, written
  whole or as 3-4-4 with the same separators;
- a bank card number: 13 to 19 digits, whole or in groups of four (or 4-6-5, 6-13), passing
  the Luhn check, not an ID number, and not part of a code with letters (a 统一社会信用代码
  such as `11441900733099896X` holds a run of 17 digits).

None of them inside a longer run of digits, and none followed by a unit of money or a
percentage (`13800138000元` is an amount). Full-width digits (０-９) count as digits; the
text is expected as `publisher.services.readable_text` reads it (invisible characters dropped,
every decimal digit as ASCII), which is how the checks and the mask call this.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

ID_NUMBER = "id_number"
MOBILE = "mobile"
BANK_CARD = "bank_card"

# Province-level codes of GB/T 2260 (83: Taiwan, as on residence permits since 2018).
PROVINCES = frozenset(
    {"11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37"}
    | {"41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64"}
    | {"65", "71", "81", "82", "83"}
)
_WEIGHTS = tuple(2 ** (17 - i) % 11 for i in range(17))
_CHECK_CHARS = "10X98765432"

# One character for one: positions found in the translated text are positions in the original.
_HALF_WIDTH = str.maketrans("０１２３４５６７８９Ｘｘ＋－．　\u00a0（）", "0123456789Xx+-.  ()")

_NOT_AMOUNT = r"(?!\s?(?:元|万|亿|千|百|%|％|‰))"
# Between the groups of an ID or mobile number: one space, or a dot, hyphen or dash (one, or
# two as in a Chinese dash ——) with at most a space either side.
_SEP = r"(?: ?[.\-\u2010-\u2015\u2212\ufe58\ufe63]{1,2} ?| )"
_ID_18 = re.compile(
    rf"(?<![0-9])([1-9][0-9]{{5}})({_SEP}?)([0-9]{{8}})\2[0-9]{{3}}[0-9Xx](?![0-9Xx])"
)
_ID_15 = re.compile(r"(?<![0-9])([1-9][0-9]{5})([0-9]{6})[0-9]{3}(?![0-9])" + _NOT_AMOUNT)
_MOBILE = re.compile(
    rf"(?<![0-9+])(?:(?:\+|00)?86{_SEP}?|\(\+?86\) ?)?"
    rf"(1[3-9][0-9])({_SEP}?)([0-9]{{4}})\2([0-9]{{4}})(?![0-9])" + _NOT_AMOUNT
)
_CARD = re.compile(
    r"(?<![0-9A-Za-z])(?:"
    r"[0-9]{13,19}"
    r"|[0-9]{4}(?P<s1>[ -])[0-9]{4}(?:(?P=s1)[0-9]{4}){1,2}(?:(?P=s1)[0-9]{1,4})?"
    r"|[0-9]{4}(?P<s2>[ -])[0-9]{6}(?P=s2)[0-9]{5}"
    r"|[0-9]{6}(?P<s3>[ -])[0-9]{13}"
    r")(?![0-9A-Za-z])" + _NOT_AMOUNT
)


@dataclass(frozen=True)
class PersonalMatch:
    """One piece of personal data in the scanned text: [start, end), the rule that found it,
    the positions of the characters a mask hides, and the text as masked."""

    kind: str
    rule: str
    start: int
    end: int
    hidden: tuple[int, ...]
    text_masked: str


def half_width(text: str) -> str:
    """`text` with full-width digits, X, +, -, brackets and (no-break) spaces as ASCII: same
    length, same positions."""
    return text.translate(_HALF_WIDTH)


def id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits of an ID number."""
    return _CHECK_CHARS[sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def _birth_date(yyyymmdd: str, today: date) -> date | None:
    try:
        born = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
    except ValueError:
        return None
    return born if date(1900, 1, 1) <= born <= today else None


def id_shaped(digits: str, today: date) -> bool:
    """Whether `digits` has the region and birth date of an ID number (18 or 15 digits),
    whatever its check character."""
    if digits[:2] not in PROVINCES:
        return False
    if len(digits) == 18:
        return _birth_date(digits[6:14], today) is not None
    if len(digits) == 15:
        return _birth_date("19" + digits[6:12], today) is not None
    return False


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char) * (2 if i % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _masked(text: str, start: int, hidden: tuple[int, ...]) -> str:
    chars = list(text)
    for position in hidden:
        chars[position - start] = "*"
    return "".join(chars)


def _birth_digits(text: str, match: re.Match[str]) -> list[int]:
    """What an ID number's mask hides: all but the region (6) and the last 4 characters
    (separators stay)."""
    return [i for i in range(match.start(), match.end()) if text[i].isalnum()][6:-4]


def _digit_positions(text: str, start: int, end: int) -> list[int]:
    return [i for i in range(start, end) if text[i].isdigit()]


def find_personal_data(text: str, today: date | None = None) -> list[PersonalMatch]:
    """Every ID number, mobile number and bank card number in `text`, in order of position.

    Where two would overlap, an ID number wins over a mobile number, and both over a bank
    card: the same digits are reported once.
    """
    today = today or date.today()
    scanned = half_width(text)
    found: list[PersonalMatch] = []
    taken: list[tuple[int, int]] = []

    def add(kind: str, rule: str, start: int, end: int, hidden: list[int]) -> None:
        if any(start < b and a < end for a, b in taken):
            return
        taken.append((start, end))
        positions = tuple(hidden)
        found.append(
            PersonalMatch(
                kind, rule, start, end, positions, _masked(text[start:end], start, positions)
            )
        )

    for m in _ID_18.finditer(scanned):
        digits = "".join(c for c in m.group(0).upper() if c.isalnum())
        if id_shaped(digits, today) and id_check_char(digits[:17]) == digits[17]:
            add(ID_NUMBER, "gb11643", m.start(), m.end(), _birth_digits(scanned, m))
    for m in _ID_15.finditer(scanned):
        if id_shaped(m.group(0), today):
            add(ID_NUMBER, "gb11643_15", m.start(), m.end(), _birth_digits(scanned, m))
    for m in _MOBILE.finditer(scanned):
        number = _digit_positions(scanned, m.start(1), m.end())
        add(MOBILE, "mobile", m.start(), m.end(), number[3:7])
    for m in _CARD.finditer(scanned):
        positions = _digit_positions(scanned, m.start(), m.end())
        digits = "".join(scanned[i] for i in positions)
        if 13 <= len(digits) <= 19 and luhn_valid(digits) and not id_shaped(digits, today):
            add(BANK_CARD, "luhn", m.start(), m.end(), positions[4:-4])
    found.sort(key=lambda match: match.start)
    return found
