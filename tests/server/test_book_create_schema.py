"""POST /v1/books takes the Brief itself: every field the CLI and the manifest know, story sampling included."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from taleloom.book import Brief
from taleloom.server.schemas import BookCreate


def test_the_form_is_the_brief():
    assert set(BookCreate.model_fields) == set(Brief.model_fields)
    form = BookCreate(pages=3, lang="KO", hero="", idea="a cat who flies", temperature=0.3, top_p=0.9, top_k=20,
                      photo="(the multipart file part is ignored here)")
    brief = form.brief()
    assert type(brief) is Brief and (brief.temperature, brief.top_p, brief.top_k) == (0.3, 0.9, 20)
    assert brief.lang == "ko" and brief.hero is None and brief.pages == 3
    with pytest.raises(ValidationError):
        BookCreate(top_p=0)  # the Brief's own bounds
