"""`taleloom tell`: photo and/or idea → a finished storybook folder (PDF, HTML, pictures, audio)."""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from taleloom.book import Brief, new_book_id
from taleloom.cli.options import brief_bounds, brief_option
from taleloom.config import get_settings
from taleloom.errors import BadInputError
from taleloom.orchestrator import Backends, create_book, load_book, run_book


def brief_from(**fields) -> Brief:
    """A Brief from CLI values (their bounds are the Brief's: brief_option); a refused one becomes one clear error."""
    try:
        return Brief(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        flag = f"--{field.replace('_', '-')}"
        bounds = brief_bounds(field) if field in Brief.model_fields else ""
        raise BadInputError(f"{flag} {err.get('input')!r}: {err['msg']}",
                            f"{flag} takes {bounds}" if bounds else "see taleloom tell --help") from None


@click.command()
@click.argument("photo", required=False, type=click.Path(path_type=Path, dir_okay=False))
@brief_option("idea", help='one-line story idea, with or instead of a photo: --idea "a cat who learns to fly"')
@brief_option("description", help="your own description of the photo (names, who is who); merged into the caption")
@brief_option("pages")
@brief_option("lang", help="reader's language (ISO 639-1 code, e.g. ko, fr)")
@brief_option("style", help="illustration style: storybook, watercolor, crayon, pixel, ink, emoji")
@brief_option("hero")
@brief_option("age")
@brief_option("tone")
@brief_option("seed", help="book seed: same seed, same book")
@brief_option("temperature")
@brief_option("top_p")
@brief_option("top_k")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("books"), show_default=True,
              help="folder the book's folder is made in")
@click.option("--resume", "resume", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="finish an interrupted book (its folder)")
@click.option("--link", help="where readers will open this book (e.g. where you publish book.html); the QR code "
                             "points there. Without it the book has no QR code: a book made here is on no server")
@click.option("--device", help="torch device for local models: cpu, cuda, auto")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON (no live display)")
def tell(photo, idea, description, pages, lang, style, hero, age, tone, seed, temperature, top_p, top_k, out, resume,
         link, device, as_json):
    """Make a storybook from a PHOTO, an --idea, or both.

    \b
      taleloom tell cat.jpg --pages 4 --lang ko --style watercolor --hero Mina --age 6 --seed 7
      taleloom tell --idea "a penguin who wants to fly" --lang fr
      taleloom tell --resume books/<id>        # finish an interrupted book
    """
    from taleloom.cli.progress import live_progress, report

    settings = get_settings(device=device)
    if resume is not None:
        if photo is not None or idea:
            raise click.UsageError("--resume finishes an existing book; give no PHOTO or --idea with it")
        book_dir = resume
        book = load_book(book_dir)
    else:
        brief = brief_from(pages=pages, lang=lang, style=style, hero=hero, age=age, tone=tone, idea=idea,
                           description=description, seed=seed, temperature=temperature, top_p=top_p, top_k=top_k)
        book_id = new_book_id()
        book_dir = out / book_id
        try:
            book = create_book(book_dir, brief, photo, link, book_id=book_id)
        except BaseException:
            _remove_empty(book_dir)
            raise
    if not as_json:
        click.echo(f"Book folder: {book_dir}  (resume with: taleloom tell --resume {book_dir})", err=True)
    backends = Backends.from_settings(settings)
    with live_progress(not as_json, book) as on_event:
        book = run_book(book_dir, backends, on_event)
    report(book, book_dir, as_json)


def _remove_empty(path: Path) -> None:
    """A refused book leaves no folder behind (only if nothing was written into it)."""
    try:
        path.rmdir()
    except OSError:
        pass
