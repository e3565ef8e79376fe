"""Getting JSON out of a model's free text, for backends that cannot constrain decoding to a schema."""

from __future__ import annotations

import json
import re
from typing import Any


def first_json_object(text: str) -> Any:
    """`text` as JSON, else its first {...} block (models wrap JSON in prose or code fences); None if neither.

    Raw line breaks inside strings are accepted (strict=False): small models write stories that way."""
    try:
        return json.loads(text, strict=False)
    except ValueError:
        pass
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match:
        try:
            return json.loads(match.group(0), strict=False)
        except ValueError:
            return None
    return None


def schema_instruction(schema: dict[str, Any]) -> str:
    """A system-prompt line asking for JSON that follows `schema` (the unconstrained fallback)."""
    return ("Answer with one JSON object only, no prose, that follows this JSON schema:\n"
            + json.dumps(schema, ensure_ascii=False))
