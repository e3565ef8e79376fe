"""The few words the book itself prints around the story (cover caption, back page, the notice that a
translation is missing), in each language the translate stage offers, so a French book does not say
"the photo". Keys: ISO 639-1 codes."""

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


# Printed (cover, reader, PDF) when the translate stage left some or all of the text in English; in the
# reader's language, since the reader asked for it.
NOT_TRANSLATED: dict[str, str] = {
    "en": "Parts of this book could not be translated and are printed in English.",
    "ar": "تعذّرت ترجمة هذا الكتاب بالكامل إلى العربية: النص غير المترجم باللغة الإنجليزية.",
    "de": "Dieses Buch konnte nicht vollständig ins Deutsche übersetzt werden: Der nicht übersetzte Text ist auf Englisch.",
    "el": "Αυτό το βιβλίο δεν μπόρεσε να μεταφραστεί πλήρως στα ελληνικά: το αμετάφραστο κείμενο είναι στα αγγλικά.",
    "es": "Este libro no se pudo traducir por completo al español: el texto sin traducir está en inglés.",
    "fr": "Ce livre n'a pas pu être entièrement traduit en français : le texte non traduit est en anglais.",
    "hi": "यह किताब पूरी तरह हिंदी में अनुवादित नहीं हो सकी: जिसका अनुवाद नहीं हुआ, वह पाठ अंग्रेज़ी में है।",
    "id": "Buku ini tidak dapat diterjemahkan sepenuhnya ke bahasa Indonesia: teks yang tidak diterjemahkan berbahasa Inggris.",
    "it": "Questo libro non è stato tradotto del tutto in italiano: il testo non tradotto è in inglese.",
    "ja": "この本は日本語に完全には翻訳できませんでした。翻訳されていない部分は英語のままです。",
    "ko": "이 책은 한국어로 완전히 번역되지 못했습니다. 번역되지 않은 부분은 영어로 되어 있습니다.",
    "nl": "Dit boek kon niet volledig in het Nederlands worden vertaald: de niet-vertaalde tekst is in het Engels.",
    "pl": "Tej książki nie udało się w pełni przetłumaczyć na polski: nieprzetłumaczony tekst jest po angielsku.",
    "pt": "Este livro não pôde ser totalmente traduzido para o português: o texto não traduzido está em inglês.",
    "ru": "Эту книгу не удалось полностью перевести на русский: непереведённый текст — на английском.",
    "sv": "Den här boken kunde inte översättas helt till svenska: den oöversatta texten är på engelska.",
    "th": "หนังสือเล่มนี้ไม่สามารถแปลเป็นภาษาไทยได้ทั้งหมด ข้อความที่ไม่ได้แปลเป็นภาษาอังกฤษ",
    "tr": "Bu kitap Türkçeye tamamen çevrilemedi: çevrilmeyen metin İngilizcedir.",
    "uk": "Цю книжку не вдалося повністю перекласти українською: неперекладений текст — англійською.",
    "vi": "Không thể dịch toàn bộ cuốn sách này sang tiếng Việt: phần chưa dịch vẫn bằng tiếng Anh.",
    "zh": "这本书未能完全翻译成中文：未翻译的文字为英文。",
}


def labels(book: Storybook) -> dict[str, str]:
    photo, online = LABELS.get(book.text_lang.split("-")[0], LABELS["en"])
    return {"photo": photo, "online": online}


def translation_notice(book: Storybook) -> str | None:
    """The notice, in the reader's language, that the book is not (all) translated; None when it is. A text
    that kept a few English words counts: the sample cat's French title printed "Le Home chaud de Mina"."""
    record = book.translation
    if record is None or (record.status == "translated" and not record.kept_words):
        return None
    return NOT_TRANSLATED.get(record.lang.split("-")[0], NOT_TRANSLATED["en"])
