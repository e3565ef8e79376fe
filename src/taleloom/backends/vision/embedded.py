"""Embedded captioner (offline, CPU): our aligned image encoder names the concepts it sees, plain image
facts add colours, light and faces, and the LLM words them into a caption (talk 000, slide 11:
image features projected into the text encoder's space, then a language model speaks).

When the LLM's answer fails validation twice, a fixed template words the same facts instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from PIL import Image
from pydantic import Field

from taleloom.backends.base import Captioner, Sampling, TextModel
from taleloom.backends.base import Options as BaseOptions
from taleloom.backends.vision.facts import describe_facts, image_facts
from taleloom.book import Caption, count

SCHEMA = {
    "type": "object",
    "properties": {"caption": {"type": "string", "minLength": 20, "maxLength": 320}},
    "required": ["caption"],
    "additionalProperties": False,
}
SYSTEM = ("You write short, concrete photo captions for a children's storybook writer. "
          "Use only the facts given. Two sentences. No names unless the owner gives them.")


# Words about the task rather than the photo: an answer using them echoes the instructions.
META_WORDS = frozenset({"caption", "captions", "sentence", "sentences", "facts", "owner", "json", "modified",
                        "modification", "version", "original", "instructions"})
# Words inside concept names that say nothing of the photo ("notebook with decorative cover").
GLUE_WORDS = frozenset({"with", "and", "the", "for", "from", "without", "into", "over", "under"})


class EmbeddedCaptioner(Captioner):
    name = "embedded"

    class Options(BaseOptions):
        top_k: int = Field(5, ge=1, le=20, description="concepts taken from the aligned encoder")
        device: str = "auto"
        tries: int = Field(2, ge=1, le=5, description="LLM answers tried before the template is used")
        llm: str = Field("smollm2", description="LLM spec used when none is attached by the orchestrator")

    def __init__(self, location: str | None = None, model: str | None = None, encoder=None, **options):
        self.options = self.Options(**options)
        self.location = location
        self._encoder = encoder  # anything with top_concepts(image, k) -> [(name, score)]
        self._llm_provider: Callable[[], TextModel] | None = None
        self.model_id = "embedded-captioner"

    # ---- wiring
    def use_llm(self, provider: Callable[[], TextModel] | TextModel) -> None:
        """Word captions with this LLM (or a callable giving it, so it is only loaded when needed)."""
        self._llm_provider = provider if callable(provider) and not isinstance(provider, TextModel) else (
            lambda: provider)

    def _llm(self) -> TextModel:
        if self._llm_provider is None:
            from taleloom.backends import registry

            llm = registry.create("llm", self.options.llm)
            self._llm_provider = lambda: llm
        return self._llm_provider()

    @property
    def encoder(self):
        if self._encoder is None:
            from taleloom.diffusion.aligned import load_aligned_encoder

            self._encoder = load_aligned_encoder(self.location, device=self.options.device)
        return self._encoder

    def ready(self) -> tuple[bool, str]:
        try:
            enc = self.encoder
        except Exception as e:  # missing checkpoint, missing module: say so
            return False, f"aligned encoder unavailable: {e}"
        return True, f"aligned encoder with {len(getattr(enc, 'concepts', []) or [])} concepts"

    # ---- captioning
    def caption(self, image: Image.Image, hint: str | None = None) -> Caption:
        scored = list(self.encoder.top_concepts(image, self.options.top_k))
        concepts = [name for name, _ in scored]
        facts = image_facts(image)
        facts["concept_scores"] = {name: round(float(s), 4) for name, s in scored}
        if hint:
            facts["owner_description"] = hint
        text, worded_by = self._word(concepts, facts, hint)
        facts["worded_by"] = worded_by  # the LLM's model id, or "template"
        return Caption(text=text, concepts=concepts, facts=facts, model_id=f"{self.model_id}+{worded_by}")

    def _word(self, concepts: list[str], facts: dict[str, Any], hint: str | None) -> tuple[str, str]:
        """(caption, who worded it): the LLM when one of its answers validates, else the template."""
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt(concepts, facts, hint)}]
        for attempt in range(self.options.tries):
            sampling = Sampling(temperature=0.3 + 0.3 * attempt, max_tokens=120, seed=attempt)
            try:
                llm = self._llm()
                answer = llm.chat(messages, sampling, schema=SCHEMA)
            except Exception:  # an LLM that cannot answer is one more reason for the template
                break
            text = validate(answer, concepts, facts, hint)
            if text:
                return merge_hint(text, hint), llm.model_id or llm.name
        return merge_hint(template(concepts, facts), hint), "template"


def prompt(concepts: list[str], facts: dict[str, Any], hint: str | None) -> str:
    lines = [f"Things seen in the photo, most likely first: {', '.join(concepts) or 'unclear'}.",
             f"Image facts: {describe_facts(facts) or 'none'}."]
    if hint:
        lines.append(f"The owner says: {hint}")
    lines.append('Write a two-sentence caption. Answer as JSON: {"caption": "..."}')
    return "\n".join(lines)


def validate(answer: str, concepts: list[str], facts: dict[str, Any], hint: str | None) -> str | None:
    """The caption if it is usable: JSON with text of sensible length, on topic, not a loop of words."""
    try:
        data = json.loads(answer)
    except (TypeError, ValueError):
        return None
    text = data.get("caption") if isinstance(data, dict) else None
    if not isinstance(text, str):
        return None
    text = " ".join(text.split())
    if not 20 <= len(text) <= 320 or re.search(r"[{}<>\[\]()]|https?://|^\W", text):
        return None
    words = re.findall(r"[a-z']+", text.lower())
    if META_WORDS & set(words):  # "a slightly modified version of the original sentence...": the task, not the photo
        return None
    if len(words) < 4 or len(set(words)) / len(words) < 0.5:  # "cat cat cat cat"
        return None
    commas = text.count(",")
    if commas >= 4 and len(words) < 3 * commas:  # "The bear, otter, squid, lab coat, ...": a list, not a caption
        return None
    topic = {w for c in concepts for w in re.findall(r"[a-z]+", c.lower()) if len(w) > 2 and w not in GLUE_WORDS}
    topic |= {c["name"] for c in facts.get("colours", [])}
    topic |= set(re.findall(r"[a-z]+", (hint or "").lower()))
    if topic and not topic & set(words):
        return None
    return text if text.endswith((".", "!", "?")) else text + "."


def template(concepts: list[str], facts: dict[str, Any]) -> str:
    """Deterministic wording of the same facts, used only when the LLM's answers fail validation."""
    things = concepts[:2]
    subject = " and ".join(things) if things else "something"
    text = f"A photo of {subject}"
    colours = [c["name"] for c in facts.get("colours", [])][:2]
    if colours:
        text += f" in {' and '.join(colours)} tones"
    text += f", in {facts['light']}." if facts.get("light") else "."
    faces, cats = facts.get("faces", 0), facts.get("cat_faces", 0)
    if faces or cats:
        seen = [count(n, w) for n, w in ((faces, "face"), (cats, "cat face")) if n]
        text += f" It shows {' and '.join(seen)}."
    return text


def merge_hint(text: str, hint: str | None) -> str:
    """The owner's description comes first: it is the one source that knows names and facts."""
    if not hint or not hint.strip():
        return text
    hint = hint.strip()
    return f"{hint if hint.endswith(('.', '!', '?')) else hint + '.'} {text}"
