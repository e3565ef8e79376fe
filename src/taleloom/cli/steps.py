"""Single steps on their own: `taleloom caption PHOTO`, `taleloom narrate TEXT`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from taleloom.config import get_settings
from taleloom.errors import BadInputError
from taleloom.orchestrator import Backends


@click.command()
@click.argument("photo", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--description", help="your own description (names, who is who), merged into the caption")
@click.option("--captioner", help="captioner backend spec (default from settings: embedded)")
@click.option("--json", "as_json", is_flag=True, help="print caption, concepts and image facts as JSON")
def caption(photo, description, captioner, as_json):
    """Describe a PHOTO the way the book's first stage does."""
    from taleloom.book import Brief
    from taleloom.imageio import load_photo
    from taleloom.stages.see import see

    loaded = load_photo(photo)
    backends = Backends.from_settings(get_settings(captioner=captioner))
    result = see(loaded.image, Brief(description=description), backends.captioner)
    if as_json:
        click.echo(json.dumps({**result.model_dump(), "notes": loaded.notes}, indent=2, ensure_ascii=False))
        return
    click.echo(result.text)
    if result.concepts:
        click.secho(f"concepts: {', '.join(result.concepts)}", dim=True)


@click.command()
@click.argument("text", required=False)
@click.option("--file", "text_file", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="read the text from this file (- for standard input)")
@click.option("--lang", default="en", show_default=True, help="language of the text (ISO code)")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("narration.wav"),
              show_default=True, help="WAV file to write")
@click.option("--narrator", help="narrator backend spec (default from settings: espeak)")
@click.option("--list-languages", is_flag=True, help="list the languages the narrator can read, then stop")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def narrate(text, text_file, lang, out, narrator, list_languages, as_json):
    """Read TEXT aloud into a WAV file."""
    from taleloom.files import atomic_write_bytes
    from taleloom.stages.narrate import wav_seconds

    backend = Backends.from_settings(get_settings(narrator=narrator)).narrator
    if list_languages:
        langs = sorted(backend.languages())
        click.echo(json.dumps(langs) if as_json else " ".join(langs))
        return
    if text_file is not None:
        text = sys.stdin.read() if str(text_file) == "-" else text_file.read_text(encoding="utf-8")
    if not text or not text.strip():
        raise BadInputError("nothing to read", 'give the text: taleloom narrate "Once upon a time" --lang en')
    backend.voice_for(lang)  # an unknown language fails here, listing the known ones
    data = backend.speak(text, lang)
    atomic_write_bytes(out, data)
    seconds = wav_seconds(data)
    if as_json:
        click.echo(json.dumps({"file": str(out), "seconds": round(seconds, 3), "lang": lang,
                               "model_id": backend.model_id}))
    else:
        click.echo(f"{out}: {seconds:.1f} s of speech ({lang})")
