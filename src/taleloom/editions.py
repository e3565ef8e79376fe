"""Editions: one book in several languages. `translate_book` adds languages to a finished book — the
same pictures, the text translated by the LLM (the translate stage's checks decide what counts as a
translation; a text it could not translate stays English and the edition says so), new narration with
word timings — and binds one PDF per language; every back page (PDF and EPUB) lists the languages.

An edition remembers the English text it was made from (`Edition.source`): after a rewrite or an
extension it is stale, left out of the listings, and `translate_book` makes it again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from taleloom.book import Change, Edition, EditionPage, Storybook, count
from taleloom.errors import BadInputError
from taleloom.files import atomic_write_bytes


def source_key(book: Storybook) -> str:
    """Fingerprint of the English title and page texts an edition is translated from."""
    data = json.dumps([book.title, [p.text for p in book.pages]], ensure_ascii=False).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def is_current(book: Storybook, edition: Edition) -> bool:
    return edition.source == source_key(book) and len(edition.pages) == len(book.pages)


def languages() -> dict[str, str]:
    from taleloom.stages.translate import LANGUAGES

    return LANGUAGES


def listing(book: Storybook) -> list[dict]:
    """The languages the book is in — its own first, then each current edition — for the back pages."""
    names = languages()
    own = book.text_lang
    rows = [{"lang": own, "name": names.get(own, own), "title": book.title_translated or book.title or "",
             "machine_translated": own != "en" and own == book.brief.lang}]
    for lang, ed in sorted(book.editions.items()):
        if is_current(book, ed) and lang != own:
            rows.append({"lang": lang, "name": names.get(lang, lang), "title": ed.title,
                         "machine_translated": ed.machine_translated and ed.translated, "english": not ed.translated})
    return rows if len(rows) > 1 else []


def view(book: Storybook, lang: str | None) -> Storybook:
    """The book as its `lang` edition reads (text, title, narration, files); None or the book's own
    language: the book itself. An unknown or stale edition → BadInputError naming what exists."""
    if lang is None or lang == book.brief.lang:
        return book
    ed = book.editions.get(lang)
    if ed is None or not is_current(book, ed):
        have = [book.brief.lang] + [c for c, e in book.editions.items() if is_current(book, e)]
        why = "is older than the book's text" if ed is not None else "does not exist"
        raise BadInputError(f"the {lang!r} edition of this book {why}; it is in: {', '.join(have)}",
                            f"add it with `taleloom book translate BOOK_DIR --lang {lang}` "
                            f"(or POST /v1/books/ID:translate)")
    pages = [p.model_copy(update={"text_translated": e.text, "audio": e.audio, "audio_seconds": e.audio_seconds,
                                  "words": e.words, "words_source": e.words_source})
             for p, e in zip(book.pages, ed.pages, strict=True)]
    return book.model_copy(update={"brief": book.brief.model_copy(update={"lang": lang}), "title_translated": ed.title,
                                   "pages": pages, "files": dict(ed.files)})


def parse_langs(text: str | list[str], book: Storybook) -> list[str]:
    """'de,fr' → ['de', 'fr']: known languages other than the book's own; anything else → BadInputError."""
    from taleloom.errors import choice_error

    items = text.split(",") if isinstance(text, str) else list(text)
    codes = list(dict.fromkeys(c.strip().lower() for c in items if c and c.strip()))
    if not codes:
        raise BadInputError("no language given", "e.g. --lang de,fr")
    names = languages()
    for code in codes:
        if code not in names:
            raise choice_error("language", code, [f"{c} ({n})" for c, n in names.items()])
        if code == book.brief.lang:
            raise BadInputError(f"the book is already in {names[code]} ({code})", "ask for other languages")
    return codes


def translate_book(book_dir: Path, backends, langs: list[str], on_event=None) -> Storybook:
    """Add (or refresh) the editions in `langs` of the finished book in `book_dir`, then bind every language."""
    from taleloom import orchestrator

    book_dir = Path(book_dir)
    with orchestrator._book_lock(book_dir):
        book = orchestrator._finish_first(book_dir, backends, on_event)
        langs = parse_langs(langs, book)
        run = orchestrator._Run(book_dir, book, backends, on_event)
        todo = [c for c in langs if c not in book.editions or not is_current(book, book.editions[c])]
        for i, lang in enumerate(todo):
            run.stage = "translate"
            run.emit("started", i / max(len(todo), 1), f"translating into {languages()[lang]}")
            book.editions[lang] = _make_edition(run, book, lang)
            orchestrator.save_book(book_dir, book)
            run.emit("finished", (i + 1) / len(todo), _summary(book.editions[lang]))
        run.stage = "bind"
        run.emit("started", 0.0, f"binding {count(len(book.editions) + 1, 'language')}")
        bind_all(book_dir, book)
        book.history.append(Change(action="translate", params={"langs": langs, "made": todo}))
        orchestrator.save_book(book_dir, book)
        run.emit("finished", 1.0, "bound")
        run.emit("done", 1.0, f"{', '.join(langs)} ready", stage=orchestrator.BOOK)
        return book


def _summary(ed: Edition) -> str:
    kept = sum(p.kept_english for p in ed.pages)
    if not ed.translated:
        return f"{ed.lang}: the LLM could not translate; the text stays English"
    return f"{ed.lang}: {count(len(ed.pages) - kept, 'page')} translated" + (f", {kept} kept in English" if kept else "")


def _make_edition(run, book: Storybook, lang: str) -> Edition:
    from taleloom.stages.write import told_kinds

    llm = run.backend("llm")
    texts = [book.title or ""] + [p.text for p in book.pages]
    result = run.fns.translate(texts, lang, llm, names=[c.name for c in book.cast], kinds=told_kinds(book.cast, book.brief))
    out = list(result)
    kept = set(getattr(result, "kept_english", [])) | {i for i, (a, b) in enumerate(zip(texts, out, strict=True))
                                                       if a == b and a.strip()}
    pages = [EditionPage(index=p.index, text=out[i + 1], kept_english=(i + 1) in kept) for i, p in enumerate(book.pages)]
    ed = Edition(lang=lang, title=out[0] or book.title or "", pages=pages, translated=len(kept) < len(texts),
                 model_id=llm.model_id or None, source=source_key(book),
                 notes=list(getattr(result, "warnings", [])))
    narrator = run.backend("narrator")
    groups: dict[str, list[EditionPage]] = {}
    for page in pages:
        groups.setdefault("en" if page.kept_english else lang, []).append(page)
    for code, group in groups.items():
        spoken = run.fns.narrate([p.text for p in group], code, narrator)
        if spoken.skipped:
            ed.notes.append(spoken.message or f"no narration in {code}")
            continue
        for page, audio, seconds, words in zip(group, spoken.audio, spoken.seconds, spoken.words, strict=True):
            page.audio = f"editions/{lang}/audio/{page.index}.wav"
            atomic_write_bytes(run.dir / page.audio, audio)
            page.audio_seconds, page.words, page.words_source = seconds, words, spoken.words_source
    return ed


def bind_all(book_dir: Path, book: Storybook) -> None:
    """Bind the book and each current edition again, so every back page lists every language."""
    from taleloom.runners import _write
    from taleloom.stages.bind import bind

    rows = listing(book)
    bound = bind(book, book_dir, rows)
    _write(book_dir, "book.html", bound.html)
    _write(book_dir, "book.pdf", bound.pdf)
    for lang, ed in book.editions.items():
        if not is_current(book, ed):
            continue
        rel = f"editions/{lang}/book.pdf"
        _write(book_dir, rel, bind(view(book, lang), book_dir, rows).pdf)
        ed.files["pdf"] = rel


def epub_path(book_dir: Path, book: Storybook, lang: str | None = None) -> Path:
    """The EPUB of the book (or of its `lang` edition), made when missing or older than the manifest."""
    from taleloom.render.epub import write_epub

    shown = view(book, lang)
    name = "book.epub" if shown is book else f"book.{lang}.epub"
    return write_epub(book_dir, shown, name, listing(book))
