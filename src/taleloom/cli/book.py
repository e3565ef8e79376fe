"""`taleloom book extend|rewrite|redraw|show`: change a finished book; each change is kept in its history."""

from __future__ import annotations

import json
from pathlib import Path

import click

from taleloom.cli.options import SEED
from taleloom.config import get_settings
from taleloom.orchestrator import Backends, extend_book, load_book, redraw_page, rewrite_page

BOOK_DIR = click.argument("book_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
AS_JSON = click.option("--json", "as_json", is_flag=True, help="print the result as JSON (no live display)")


@click.group()
def book():
    """Change an existing book: add pages, rewrite a page, redraw a picture."""


def _run(book_dir: Path, as_json: bool, action, check=None) -> None:
    """Check the arguments against the book (`check(book)` raises), then run `action` with a live display."""
    from taleloom.cli.progress import live_progress, report

    current = load_book(book_dir)
    if check is not None:
        check(current)  # a wrong page number or style stops here, before any display or model loads
    backends = Backends.from_settings(get_settings())
    with live_progress(not as_json, current) as on_event:
        result = action(backends, on_event)
    report(result, book_dir, as_json)


@book.command()
@BOOK_DIR
@click.option("--pages", type=click.IntRange(1, 24), default=1, show_default=True, help="how many pages to add")
@AS_JSON
def extend(book_dir, pages, as_json):
    """Continue the story in BOOK_DIR by --pages more pages."""
    _run(book_dir, as_json, lambda b, ev: extend_book(book_dir, b, pages, on_event=ev))


@book.command()
@BOOK_DIR
@click.argument("page", type=int)
@click.option("--instruction", "-i", required=True, help='what to change, e.g. "make it funnier"')
@AS_JSON
def rewrite(book_dir, page, instruction, as_json):
    """Rewrite PAGE of the book in BOOK_DIR following --instruction (its picture and audio are redone)."""
    _run(book_dir, as_json, lambda b, ev: rewrite_page(book_dir, b, page, instruction, on_event=ev),
         check=lambda current: current.page(page))


@book.command()
@BOOK_DIR
@click.argument("page", type=int)
@click.option("--seed", type=SEED, help="new seed (default: the page's next seed; with --style, its own seed)")
@click.option("--style", help="new style preset for this picture")
@AS_JSON
def redraw(book_dir, page, seed, style, as_json):
    """Draw PAGE's picture again with a new seed and/or style."""
    def check(current) -> None:
        current.page(page)
        if style:
            from taleloom.stages.stage import get_style

            get_style(style)

    _run(book_dir, as_json, lambda b, ev: redraw_page(book_dir, b, page, seed=seed, style=style, on_event=ev), check)


@book.command()
@BOOK_DIR
@AS_JSON
def show(book_dir, as_json):
    """Print a book's title, pages, timings and history."""
    from taleloom.cli.progress import report, summary

    b = load_book(book_dir)
    if as_json:
        data = summary(b, book_dir) | {"history": [c.model_dump() for c in b.history],
                                       "pages_text": [p.text_translated or p.text for p in b.pages]}
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    report(b, book_dir, False)
    for c in b.history:
        click.echo(f"  {c.at}  {c.action}{f' page {c.page}' if c.page else ''}  {json.dumps(c.params)}")


@book.command()
@BOOK_DIR
@click.option("--epub", "as_epub", is_flag=True, required=True,
              help="an EPUB 3 with the narration and read-along (Media Overlays)")
@click.option("--lang", help="an edition's language (see `book translate`); default: the book's own")
@click.option("--out", "-o", type=click.Path(path_type=Path, dir_okay=False), help="where to write it "
              "(default: BOOK_DIR/epub/book.epub)")
@AS_JSON
def export(book_dir, as_epub, lang, out, as_json):
    """Export the book in BOOK_DIR as another kind of file (--epub)."""
    import shutil

    from taleloom.editions import epub_path, view
    from taleloom.errors import BadInputError

    current = load_book(book_dir)
    if not current.stage_done("bind"):
        raise BadInputError(f"the book in {book_dir} is not finished yet", f"finish it first: taleloom tell --resume {book_dir}")
    path = epub_path(book_dir, current, lang.strip().lower() if lang else None)
    current = view(current, lang.strip().lower() if lang else None)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out)
        path = out
    narrated = sum(1 for p in current.pages if p.words)
    if as_json:
        click.echo(json.dumps({"epub": str(path), "pages": len(current.pages), "read_along_pages": narrated,
                               "bytes": path.stat().st_size}))
    else:
        click.echo(f"{path}  ({len(current.pages)} pages, {narrated} with read-along narration, "
                   f"{path.stat().st_size / 1e6:.1f} MB)")


@book.command()
@BOOK_DIR
@click.option("--lang", "langs", required=True, help="languages to add, comma-separated ISO codes, e.g. de,fr")
@AS_JSON
def translate(book_dir, langs, as_json):
    """Add languages to the book in BOOK_DIR: the same pictures, the text translated by the LLM, new
    narration, one PDF (and EPUB) per language; every back page lists them."""
    from taleloom.editions import parse_langs, translate_book

    codes: list[str] = []

    def check(current) -> None:
        codes.extend(parse_langs(langs, current))

    _run(book_dir, as_json, lambda b, ev: translate_book(book_dir, b, codes, on_event=ev), check)
    if not as_json:
        book = load_book(book_dir)
        for code in codes:
            ed = book.editions[code]
            state = "machine-translated" if ed.translated else "NOT translated (the LLM could not; English kept)"
            kept = sum(p.kept_english for p in ed.pages)
            click.echo(f"  {code}: “{ed.title}”, {state}" + (f", {kept} pages kept in English" if kept and ed.translated
                                                          else "") + f" → {ed.files.get('pdf', '')}")
