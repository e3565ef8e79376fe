"""`taleloom write`: the write stage on its own — title, cast sheet, pages with text and key scene."""

from __future__ import annotations

import json

import click

from taleloom.cli.options import brief_option
from taleloom.errors import BadInputError


@click.command()
@click.option("--caption", "caption_text", help="what the photo shows, as the see stage would say it")
@brief_option("idea", help='one-line story idea: --idea "a cat who learns to fly"')
@brief_option("pages")
@brief_option("lang", help="reader's language (ISO code); pages are translated")
@brief_option("hero")
@brief_option("age")
@brief_option("tone")
@brief_option("seed", help="same seed, same story")
@brief_option("temperature")
@brief_option("top_p")
@brief_option("top_k")
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
    with console.status(f"writing {brief.pages} pages with {model.model_id or 'the LLM'}…"):
        draft = write_story(caption, brief, model)
    translated, warnings = None, []
    if brief.lang != "en":
        with console.status(f"translating into {brief.lang}…"):
            result = translate([draft.title] + [p.text for p in draft.pages], brief.lang, model,
                               names=[c.name for c in draft.cast])
        translated, warnings = list(result), result.warnings
    if as_json:
        data = draft.model_dump()
        data.update(lang=brief.lang, seed=seed, model_id=model.model_id)
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
