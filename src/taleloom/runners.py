"""How the orchestrator runs each stage on a book folder: read what the stage needs from the book,
call the plain stage function with metered backends, write its files atomically, update the book.

Each runner works on what is still missing (pages without translation, request, picture or audio),
so a resumed or edited book only redoes what is needed. A runner returns None, a message, or
"skipped: why" when the stage had nothing it could do (no photo; no voice for the language).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from taleloom.book import Page, count
from taleloom.bookrun import Run as _Run
from taleloom.files import atomic_save_image, atomic_write_bytes, atomic_write_text
from taleloom.stages.stage import concept_mapper_for
from taleloom.stages.translate import LANGUAGE_ID
from taleloom.stages.write import told_kinds


def run_see(run: _Run) -> str | None:
    book = run.book
    if not book.photo:
        return "skipped: no photo; the story starts from the idea"
    image = Image.open(run.dir / book.photo).convert("RGB")
    book.caption = run.fns.see(image, book.brief, run.backend("captioner"))
    return book.caption.text if book.caption else None


def run_write(run: _Run) -> str | None:
    book = run.book
    book.stages["write"].params = {"sampling": run.fns.story_sampling(book.brief).model_dump()}
    draft = run.fns.write_story(book.caption, book.brief, run.backend("llm"))
    book.title, book.title_translated = draft.title, None
    book.cast = list(draft.cast)
    book.pages = [Page(index=i + 1, text=p.text, scene=p.scene, outline=p.outline) for i, p in enumerate(draft.pages)]
    book.notes.extend(draft.notes)
    return f"“{draft.title}”, {count(len(book.pages), 'page')}"


def run_translate(run: _Run) -> str | None:
    """Every printed text that has no translation yet (title, the cover's hero line, pages) in one go; the
    manifest's `translation` records what stayed English, and the book prints a notice when any did."""
    from taleloom.book import TranslationRecord
    book = run.book
    lang = book.brief.lang
    hero = next((c for c in book.cast if c.role == "hero"), None)
    todo: list[tuple[str, str]] = []  # (label, English text)
    if book.title is not None and book.title_translated is None:
        todo.append(("title", book.title))
    if hero is not None and hero.look and hero.look_translated is None:
        todo.append(("cover", hero.look))
    todo += [(f"page {p.index}", p.text) for p in book.pages if p.text_translated is None]
    if not todo:
        return None
    result = run.fns.translate([text for _, text in todo], lang, run.backend("llm"), names=[c.name for c in book.cast],
                               kinds=told_kinds(book.cast, book.brief))
    done = dict(zip((label for label, _ in todo), result, strict=True))
    if "title" in done:
        book.title_translated = done["title"]
    if "cover" in done:
        hero.look_translated = done["cover"]
    for p in book.pages:
        p.text_translated = done.get(f"page {p.index}", p.text_translated)
    kept = [label for i, (label, _) in enumerate(todo) if i in set(getattr(result, "kept_english", []))]
    if lang != "en":
        earlier = [k for k in (book.translation.kept_english if book.translation else []) if k not in done]
        kept = sorted(set(earlier + kept), key=lambda k: (k != "title", k != "cover", len(k), k))
        printed = 2 + len(book.pages)
        status = "translated" if not kept else "not_translated" if len(kept) >= printed else "partly"
        words = {label: w for i, (label, _) in enumerate(todo) if (w := getattr(result, "kept_words", {}).get(i))}
        if book.translation:  # a resumed or extended book keeps what its earlier texts kept
            words = {**{k: v for k, v in book.translation.kept_words.items() if k not in done}, **words}
        book.translation = TranslationRecord(lang=lang, status=status, kept_english=kept, checked_by=LANGUAGE_ID,
                                             kept_words=words)
    warnings = list(getattr(result, "warnings", []))  # e.g. texts the LLM could not translate stay English
    return f"{len(todo)} texts → {lang}" + (f"; {'; '.join(warnings)}" if warnings else "")


def run_stage(run: _Run) -> str | None:
    book = run.book
    pages = [p for p in book.pages if p.request is None]
    if not pages:
        return None
    requests = run.fns.stage(book, concept_mapper_for(run.backend("illustrator")))
    for page, req in zip(pages, requests, strict=True):
        page.request = req
    return f"style {book.brief.style}, {len(requests)} requests"


def run_illustrate(run: _Run) -> str | None:
    book = run.book
    pages = [p for p in book.pages if p.image_lowres is None]
    if not pages:
        return None
    illustrator = run.backend("illustrator")

    def keep(indices: list[int], images: list[Image.Image]) -> None:  # save each batch at once
        for i, img in zip(indices, images, strict=True):
            page = pages[i]
            page.image_lowres = _write(run.dir, f"pages/{page.index}.lowres.png", img)
            page.image = None
        run.save()

    run.fns.illustrate([p.request for p in pages], illustrator, on_batch=keep,
               on_progress=lambda d, t: run.progress(d, t, "pictures"))
    retries = run.backends.settings.page_audit_retries
    if retries and illustrator.draws_concepts and illustrator.aligned is not None:
        redrawn = _audit(run, illustrator, {p.index for p in pages}, retries)
        return count(len(pages), "picture") + (f", {count(redrawn, 'page')} redrawn after the check" if redrawn
                                               else ", every page passed its check")
    return count(len(pages), "picture")


def _audit(run: _Run, illustrator, drawn: set[int], retries: int) -> int:
    """Check every picture of the book with the aligned encoder; redraw this run's failing pages."""
    from taleloom.stages.audit import audit

    book = run.book
    pages = [p for p in book.pages if p.image_lowres and p.request is not None]
    if not pages:
        return 0
    hero = next((c for c in book.cast if c.role == "hero"), book.cast[0] if book.cast else None)
    heroes = [p.request.concepts[0] if p.request.concepts else (hero.look if hero else p.scene) for p in pages]
    settings = [p.request.concepts[1] if len(p.request.concepts) > 1 else p.scene for p in pages]
    images = [Image.open(run.dir / p.image_lowres).convert("RGB") for p in pages]
    run.emit("progress", 1.0, "checking the pictures")
    # a picture the user asked to redraw (with a seed of their choosing, maybe) is checked, not replaced
    asked = {c.page for c in book.history[-1:] if c.action == "redraw"}
    kept, requests, checks = audit(images, [p.request for p in pages], heroes, settings, illustrator.aligned,
                                   lambda reqs: run.fns.illustrate(reqs, illustrator),
                                   [p.index in drawn and p.index not in asked for p in pages], retries=retries)
    redrawn = 0
    for page, img, req, page_checks in zip(pages, kept, requests, checks, strict=True):
        if page.index not in drawn:
            continue
        page.checks = page_checks
        redrawn += len(page_checks) > 1
        if req.seed != page.request.seed:
            page.request = req
            page.image_lowres = _write(run.dir, f"pages/{page.index}.lowres.png", img)
    run.save()
    return redrawn


def run_upscale(run: _Run) -> str | None:
    book = run.book
    pages = [p for p in book.pages if p.image is None and p.image_lowres]
    if not pages:
        return None
    small = [Image.open(run.dir / p.image_lowres).convert("RGB") for p in pages]

    def keep(indices: list[int], images: list[Image.Image]) -> None:  # saved at once: a resume keeps them
        for i, big in zip(indices, images, strict=True):
            pages[i].image = _write(run.dir, f"pages/{pages[i].index}.png", big)
        run.save()

    finals = run.fns.upscale(small, [p.request for p in pages], run.backend("upscaler"), on_batch=keep,  # loaded on first use
                     on_progress=lambda d, t: run.progress(d, t, "pictures"))
    for page, img in zip(pages, finals, strict=True):
        if page.image is None:  # already at print size, so no upscale call saw it
            page.image = _write(run.dir, f"pages/{page.index}.png", img)
    return count(len(pages), "picture")


def run_narrate(run: _Run) -> str | None:
    """Each page in the book's language; a page the LLM could not translate is read in English."""
    book = run.book
    pages = [p for p in book.pages if p.audio is None]
    if not pages:
        return None
    lang = book.brief.lang
    groups: dict[str, list[Page]] = {}
    for p in pages:
        groups.setdefault("en" if p.text_translated in (None, p.text) and lang != "en" else lang, []).append(p)
    narrator, read, skipped = run.backend("narrator"), 0.0, []
    for code, group in groups.items():
        result = run.fns.narrate([p.text_translated or p.text for p in group], code, narrator,
                         on_progress=lambda d, t: run.progress(d, t, "pages read"))
        if result.skipped:
            skipped.append(result.message)
            continue
        for page, data, seconds, words in zip(group, result.audio, result.seconds, result.words, strict=True):
            page.audio = _write(run.dir, f"audio/{page.index}.wav", data)
            page.audio_seconds = seconds
            page.words, page.words_source = words, result.words_source
            read += seconds or 0.0
    if skipped and not read:
        return f"skipped: {'; '.join(skipped)}"
    return f"{read:.1f} s of audio" + (f"; {'; '.join(skipped)}" if skipped else "")


def run_bind(run: _Run) -> str | None:
    book = run.book
    book.files = {"pdf": "book.pdf", "html": "book.html", "manifest": "manifest.json"}
    if book.url:
        book.files["qr"] = "qr.png"
    from taleloom.editions import listing

    bound = run.fns.bind(book, run.dir, listing(book))
    if bound.qr_png:
        _write(run.dir, "qr.png", bound.qr_png)
    _write(run.dir, "book.html", bound.html)
    _write(run.dir, "book.pdf", bound.pdf)
    return f"{len(book.pages) + 2} PDF pages"


def _write(book_dir: Path, rel: str, data: bytes | str | Image.Image) -> str:
    """Write one of the book's files atomically; returns its relative path."""
    path = Path(book_dir) / rel
    if isinstance(data, Image.Image):
        atomic_save_image(path, data)
    elif isinstance(data, str):
        atomic_write_text(path, data)
    else:
        atomic_write_bytes(path, data)
    return rel
