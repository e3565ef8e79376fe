"""The rules for the free text in a brief (hero, tone, idea, description), checked at the door.

Everything a person types into a brief ends up in an LLM prompt, and the hero's name also ends up in
a JSON-schema `enum` that llama.cpp compiles into a grammar: a quote or a NUL byte there crashed the
whole server (issue 10). So text is normalised (Unicode NFC, runs of white space made one space) and
refused, with a message naming the field, when it holds control or bidirectional-override characters,
HTML/XML markup, or is too long. The hero's name is held tighter still: it must be a name the
English-first writer can write and check, i.e. Latin letters (accents welcome), spaces, ' - and .

The Brief's validators (book.py) call these, so the CLI and the HTTP API apply one rule.
"""

from __future__ import annotations

import re
import unicodedata

# bidirectional embedding/override/isolate controls: they reorder what a reader sees ("trojan source")
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
MARKUP = re.compile(r"<\s*[/!?]?\s*[A-Za-z][^>]*>|<\s*/?\s*>|&[#A-Za-z0-9]+;")
NAME_PUNCT = frozenset(" '’-.")
HERO_MAX = 40


def clean(value: str, field: str, max_len: int) -> str:
    """`value` normalised to one line of NFC text; ValueError (naming `field`) for what must not pass."""
    text = unicodedata.normalize("NFC", value)
    for ch in text:
        if ch == "\x00":
            raise ValueError(f"{field} contains a NUL byte (\\x00); send plain text")
        if ch in BIDI_CONTROLS:
            raise ValueError(f"{field} contains the bidirectional control character U+{ord(ch):04X}; "
                             "remove it (it changes the order in which text is shown)")
        if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r":
            raise ValueError(f"{field} contains the control character U+{ord(ch):04X}; send plain text")
    if MARKUP.search(text):
        raise ValueError(f"{field} contains markup ({MARKUP.search(text).group(0)[:30]!r}); "
                         "write plain words without <tags> or &entities;")
    text = " ".join(text.split())
    if len(text) > max_len:
        raise ValueError(f"{field} is {len(text)} characters long; at most {max_len} are allowed")
    return text


def hero_name(value: str) -> str:
    """A hero's name: Latin letters (accents too), spaces, apostrophes, hyphens and dots, at most 40 characters."""
    name = clean(value, "hero", HERO_MAX)
    if not name:
        return name
    for ch in name:
        if ch in NAME_PUNCT:
            continue
        if ch in "\"“”«»„":
            raise ValueError("hero is a name and may not contain quotation marks; "
                             "write it without them (e.g. Mina Bean)")
        cat = unicodedata.category(ch)
        if cat.startswith("M") or (cat.startswith("L") and unicodedata.name(ch, "").startswith("LATIN")):
            continue
        if cat.startswith("L"):
            raise ValueError(f"hero {name!r} is not in Latin letters ({ch!r} is {_script(ch)}): the story is "
                             "written in English first and translated afterwards; write the name in Latin letters")
        raise ValueError(f"hero may only hold letters, spaces and ' - . ({ch!r}, U+{ord(ch):04X}, is not allowed)")
    if not unicodedata.category(name[0]).startswith("L"):
        raise ValueError(f"hero {name!r} must start with a letter")
    return name


def _script(ch: str) -> str:
    """'ARABIC', 'CJK' ...: the first word of a character's Unicode name, for messages."""
    return (unicodedata.name(ch, "UNKNOWN").split() or ["UNKNOWN"])[0].lower() + " script"
