"""The page text cut into the timed words and what lies between them, so a word can be highlighted in
place (the EPUB's spans; the web reader does the same walk in app.js)."""

from __future__ import annotations

from taleloom.book import WordTiming


def word_segments(text: str, words: list[WordTiming]) -> list[tuple[str, int | None]]:
    """[(piece, word number or None)] covering `text` exactly: each timed word where it is printed, in
    order; a word that cannot be found (the text was edited after narration) is skipped, not invented."""
    out: list[tuple[str, int | None]] = []
    at = 0
    for n, w in enumerate(words):
        i = text.find(w.text, at)
        if i < 0:
            continue
        if i > at:
            out.append((text[at:i], None))
        out.append((w.text, n))
        at = i + len(w.text)
    if at < len(text):
        out.append((text[at:], None))
    return out
