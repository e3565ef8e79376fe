"""Book → HTML (Jinja2 templates) → PDF (WeasyPrint). Fonts: Debian's Noto, CJK included, chosen
by the book's language so Korean, Japanese and Chinese get their own glyph forms."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from taleloom.book import Storybook
from taleloom.render.labels import labels, translation_notice
from taleloom.render.qr import data_uri

CJK = {"ko": "KR", "ja": "JP", "zh": "SC", "zh-tw": "TC", "zh-hk": "HK", "yue": "HK"}
RTL = {"ar", "he", "fa", "ur", "yi"}


def fonts_for(lang: str) -> tuple[str, str]:
    """(serif stack, sans stack) as CSS font-family lists for `lang`; Pango falls back per glyph after these."""
    region = CJK.get(lang.lower()) or CJK.get(lang.lower().split("-")[0])
    cjk = [region] if region else []
    cjk += [r for r in ("SC", "JP", "KR", "TC") if r not in cjk]
    serif = ["Noto Serif"] + [f"Noto Serif CJK {r}" for r in cjk] + ["Noto Sans", "serif"]
    sans = ["Noto Sans"] + [f"Noto Sans CJK {r}" for r in cjk] + ["sans-serif"]
    if region:  # CJK text: put the right regional font first so shared code points use its forms
        serif.insert(0, serif.pop(1))
        sans.insert(0, sans.pop(1))
    return ", ".join(f'"{f}"' if " " in f else f for f in serif), ", ".join(f'"{f}"' if " " in f else f for f in sans)


@functools.cache
def _env() -> Environment:
    return Environment(loader=PackageLoader("taleloom", "render/templates"),
                       autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)


def context(book: Storybook, qr: bytes | None, editions: list[dict] | None = None) -> dict:
    lang = book.text_lang  # an Arabic brief whose translation failed prints English, left to right
    serif, sans = fonts_for(lang)
    hero = next((c for c in book.cast if c.role == "hero"), book.cast[0] if book.cast else None)
    return {
        "book": book,
        "lang": lang,
        "dir": "rtl" if lang.split("-")[0] in RTL else "ltr",
        "title": book.title_translated or book.title or "A story",
        "hero": hero,
        "hero_look": (hero.look_translated or hero.look) if hero else None,
        "notice": translation_notice(book),
        "hero_picture": next((p.image or p.image_lowres for p in book.pages if p.image or p.image_lowres), None),
        "pages": [{"index": p.index, "text": p.text_translated or p.text, "image": p.image or p.image_lowres,
                   "audio": p.audio, "scene": p.scene} for p in book.pages],
        "qr": data_uri(qr) if qr else None,
        "serif": serif,
        "sans": sans,
        "models": book.models,
        "labels": labels(book),
        "editions": editions or [],
    }


def render_html(book: Storybook, template: str, qr: bytes | None, editions: list[dict] | None = None) -> str:
    """`template` is "pdf.html" (print layout) or "book.html" (the reading page kept beside the PDF)."""
    return _env().get_template(template).render(**context(book, qr, editions))


def html_to_pdf(document: str, base_dir: Path) -> bytes:
    """Render HTML whose relative links (pages/1.png, photo.png) resolve inside `base_dir`."""
    import weasyprint

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    return weasyprint.HTML(string=document, base_url=str(base_dir) + "/").write_pdf()
