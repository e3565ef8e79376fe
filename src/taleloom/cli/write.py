"""`taleloom write`: the write stage on its own — title, cast sheet, pages with text and key scene."""

from __future__ import annotations

import json

import click

from taleloom.cli.options import SEED
from taleloom.errors import BadInputError


@click.command()
@click.option("--caption", "caption_text", help="what the photo shows, as the see stage would say it")
@click.option("--idea", help='one-line story idea: --idea "a cat who learns to fly"')
@click.option("--pages", type=int, default=4, show_default=True, help="number of story pages")
@click.option("--lang", default="en", show_default=True, help="reader's language (ISO code); pages are translated")
@click.option("--hero", help="hero's name (the LLM picks one when not given)")
@click.option("--age", type=int, default=6, show_default=True, help="reader's age: sets length and words")
@click.option("--tone", default="warm and gentle", show_default=True, help="tone of the story")
@click.option("--seed", type=SEED, default=0, show_default=True, help="same seed, same story")
@click.option("--temperature", type=float, help="sampling temperature for the story (default 0.6)")
@click.option("--top-p", type=float, help="nucleus sampling: keep the likeliest tokens up to this probability")
@click.option("--top-k", type=int, help="sample among the k likeliest tokens (0: all)")
@click.option("--llm", help="LLM backend spec (default from settings: smollm2)")
@click.option("--json", "as_json", is_flag=True, help="print the draft as JSON")
def write(caption_text, idea, pages, lang, hero, age, tone, seed, temperature, top_p, top_k, llm, as_json):
    """Write a story from a caption and/or an idea: title, cast, and each page's text and scene."""
    from rich.console import Console

    from taleloom.book import Caption
    from taleloom.cli.tell import brief_from
    from taleloom.config import get_settings
    from taleloom.orchestrator import Backends
    from taleloom.stages.translate import check_language, translate
    from taleloom.stages.write import write_story

    if not (caption_text or idea):
        raise BadInputError("nothing to write about", 'give --caption "a cat in a garden" or --idea "..." (or both)')
    brief = brief_from(pages=pages, lang=check_language(lang), hero=hero, age=age, tone=tone, idea=idea, seed=seed,
                       temperature=temperature, top_p=top_p, top_k=top_k)
    caption = Caption(text=caption_text) if caption_text else None
    model = Backends.from_settings(get_settings(llm=llm)).llm
    console = Console(stderr=True)
    with console.status(f"writing {brief.pages} pages with {getattr(model, 'model_id', '') or 'the LLM'}…"):
        draft = write_story(caption, brief, model)
    translated, warnings = None, []
    if brief.lang != "en":
        with console.status(f"translating into {brief.lang}…"):
            result = translate([draft.title] + [p.text for p in draft.pages], brief.lang, model)
        translated, warnings = list(result), result.warnings
    if as_json:
        data = draft.model_dump()
        data.update(lang=brief.lang, seed=seed, model_id=getattr(model, "model_id", ""))
        if translated is not None:
            data["title_translated"] = translated[0]
            for page, text in zip(data["pages"], translated[1:], strict=True):
                page["text_translated"] = text
            data["warnings"] = warnings
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.secho(draft.title, bold=True)
    if translated is not None:
        click.secho(translated[0], bold=True)
    for member in draft.cast:
        click.echo(f"  {member.role}: {member.name} — {member.look}")
    for i, page in enumerate(draft.pages, 1):
        click.echo(f"\n{i}. {page.text}")
        if translated is not None and translated[i] != page.text:
            click.echo(f"   {translated[i]}")
        click.secho(f"   scene: {page.scene}", dim=True)
    for warning in warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
