"""The few words the book itself prints around the story (cover caption, back page), in each language
the translate stage offers, so a French book does not say "the photo". Keys: ISO 639-1 codes."""

from __future__ import annotations

from taleloom.book import Storybook

LABELS: dict[str, tuple[str, str]] = {  # code: (the photo, read and listen to this book online)
    "en": ("the photo", "Read and listen to this book online"),
    "ar": ("الصورة", "اقرأ هذا الكتاب واستمع إليه على الإنترنت"),
    "de": ("das Foto", "Dieses Buch online lesen und anhören"),
    "el": ("η φωτογραφία", "Διάβασε και άκου αυτό το βιβλίο online"),
    "es": ("la foto", "Lee y escucha este libro en línea"),
    "fr": ("la photo", "Lire et écouter ce livre en ligne"),
    "hi": ("तस्वीर", "यह किताब ऑनलाइन पढ़ें और सुनें"),
    "id": ("fotonya", "Baca dan dengarkan buku ini secara daring"),
    "it": ("la foto", "Leggi e ascolta questo libro online"),
    "ja": ("写真", "この本はオンラインで読んだり聞いたりできます"),
    "ko": ("사진", "이 책을 온라인으로 읽고 들어 보세요"),
    "nl": ("de foto", "Lees en beluister dit boek online"),
    "pl": ("zdjęcie", "Czytaj i słuchaj tej książki online"),
    "pt": ("a foto", "Leia e ouça este livro online"),
    "ru": ("фотография", "Читайте и слушайте эту книгу онлайн"),
    "sv": ("fotot", "Läs och lyssna på den här boken på nätet"),
    "th": ("ภาพถ่าย", "อ่านและฟังหนังสือเล่มนี้ทางออนไลน์"),
    "tr": ("fotoğraf", "Bu kitabı çevrimiçi okuyun ve dinleyin"),
    "uk": ("фотографія", "Читайте й слухайте цю книжку онлайн"),
    "vi": ("bức ảnh", "Đọc và nghe cuốn sách này trực tuyến"),
    "zh": ("照片", "在线阅读和收听这本书"),
}


def text_language(book: Storybook) -> str:
    """The language the pages are actually in: the brief's, unless the LLM left every page in English."""
    lang = book.brief.lang
    if lang == "en" or any(p.text_translated and p.text_translated != p.text for p in book.pages):
        return lang
    return "en"


def labels(book: Storybook) -> dict[str, str]:
    photo, online = LABELS.get(text_language(book).split("-")[0], LABELS["en"])
    return {"photo": photo, "online": online}
