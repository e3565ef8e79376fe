"""What every vision-language captioner asks and how its answer becomes a `Caption` — one place, so the
OpenAI-compatible, LLaVA GGUF and transformers captioners word and parse captions alike."""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import Image

from taleloom.backends.json_answers import first_json_object
from taleloom.book import Caption

CAPTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "description": "two or three sentences describing the photo"},
        "concepts": {"type": "array", "items": {"type": "string"}, "maxItems": 8,
                     "description": "main things in the photo, one or two words each, most important first"},
    },
    "required": ["text", "concepts"],
    "additionalProperties": False,
}

SYSTEM = ("You describe photos for a children's storybook writer. Say who and what is in the photo, where it is, "
          "colours, light and mood. Do not guess names.")


def caption_prompt(hint: str | None, as_json: bool = True) -> str:
    """The user turn's text. `hint` is the owner's own description: trusted for names and facts."""
    prompt = "Describe this photo in two or three sentences."
    if as_json:
        prompt += (' Answer with JSON only: {"text": "<description>", "concepts": ["<main thing>", ...]} '
                   "(up to 8 concepts, one or two words each, most important first).")
    if hint:
        prompt += f" The photo's owner describes it as: {hint!r}. Use their names and facts."
    return prompt


def image_data_url(image: Image.Image, max_side: int = 1024, quality: int = 90) -> str:
    """JPEG data URL of `image`, shrunk so its longer side is at most `max_side` (vision models resize anyway)."""
    image = image.convert("RGB")
    if max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def chat_messages(image: Image.Image, hint: str | None, max_side: int = 1024) -> list[dict[str, Any]]:
    """OpenAI-style vision chat: system prompt, then text + image (as a data URL) in one user turn."""
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": [
            {"type": "text", "text": caption_prompt(hint)},
            {"type": "image_url", "image_url": {"url": image_data_url(image, max_side)}},
        ]},
    ]


def parse_caption(answer: str, hint: str | None, model_id: str) -> Caption:
    """JSON answer → Caption; a model that ignored the JSON request still gives a caption (its plain text)."""
    data = first_json_object(answer)
    if isinstance(data, dict) and isinstance(data.get("text"), str) and data["text"].strip():
        text = data["text"].strip()
        concepts = [str(c).strip().lower() for c in data.get("concepts") or [] if str(c).strip()]
    else:
        text, concepts = answer.strip(), []
    facts: dict[str, Any] = {"source": model_id}
    if hint:
        facts["owner_description"] = hint
    return Caption(text=text or (hint or ""), concepts=list(dict.fromkeys(concepts))[:8], facts=facts,
                   model_id=model_id)


_STOPWORDS = set("a an the of in on at to and or with for from by is are was were be it its this that there "
                 "picture photo image photograph some two three one his her their near next".split())


def concepts_from_text(text: str, limit: int = 8) -> list[str]:
    """Content words of a plain caption, in order, without repeats (for captioners that give only prose)."""
    words = [w.strip(".,;:!?'\"()").lower() for w in text.split()]
    return list(dict.fromkeys(w for w in words if len(w) > 2 and w.isalpha() and w not in _STOPWORDS))[:limit]
