"""See: caption the photo (nothing to see when the book starts from an idea alone)."""

from __future__ import annotations

from PIL import Image

from taleloom.backends.base import Captioner
from taleloom.book import Brief, Caption


def see(image: Image.Image | None, brief: Brief, captioner: Captioner) -> Caption | None:
    """Describe the photo; the user's own description (brief.description) is merged in by the captioner."""
    if image is None:
        return None
    caption = captioner.caption(image, hint=brief.description)
    if not caption.model_id:
        caption = caption.model_copy(update={"model_id": captioner.model_id})
    return caption
