"""Three languages from the first page: English, Traditional Chinese and Simplified Chinese.

Catalogues live in ``bauhinia/locale/<babel id>/LC_MESSAGES/messages.po`` and are
compiled to ``.mo`` at build time. Language tags on the web follow BCP 47
(``zh-Hant``); Babel's directory names use underscores (``zh_Hant``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from babel import Locale
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DEFAULT_LANGUAGE = "en"
LANGUAGES: tuple[str, ...] = ("en", "zh-Hant", "zh-Hans")
LANGUAGE_COOKIE = "bauhinia_lang"

# How each language names itself, for the switcher (never translated).
AUTONYMS = {"en": "English", "zh-Hant": "繁體中文", "zh-Hans": "简体中文"}

# Browser tags that mean one of our scripts. Hong Kong, Taiwan and Macao write Traditional.
_REGION_SCRIPT = {"hk": "zh-Hant", "tw": "zh-Hant", "mo": "zh-Hant", "cn": "zh-Hans", "sg": "zh-Hans", "my": "zh-Hans"}


def N_(message: str) -> str:  # noqa: N802 (the gettext convention for "mark, translate later")
    """Mark a message for extraction; it is translated where it is shown."""
    return message


# Chinese input methods type full-width forms (U+FF01–U+FF5E, and U+3000 for a space); people mean ASCII.
_FULLWIDTH = {codepoint: codepoint - 0xFEE0 for codepoint in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def fold_fullwidth(text: str) -> str:
    """``Ａ１２３４５６（３）`` → ``A123456(3)``. Only the full-width block: no other look-alikes."""
    return text.translate(_FULLWIDTH)


def babel_id(language: str) -> str:
    return language.replace("-", "_")


@cache
def translations(language: str) -> NullTranslations:
    if language == DEFAULT_LANGUAGE:
        return NullTranslations()
    compiled = LOCALE_DIR / babel_id(language) / "LC_MESSAGES" / "messages.mo"
    if not compiled.exists():
        raise RuntimeError(f"missing compiled catalogue {compiled}: run `make setup`")
    return Translations.load(str(LOCALE_DIR), [babel_id(language)])


def babel_locale(language: str) -> Locale:
    return Locale.parse(babel_id(language))


def normalise(tag: str | None) -> str | None:
    """Map a BCP 47 tag to one of ours, or None."""
    if not tag:
        return None
    parts = tag.strip().lower().replace("_", "-").split("-")
    if parts[0] == "en":
        return "en"
    if parts[0] != "zh":
        return None
    if "hant" in parts:
        return "zh-Hant"
    if "hans" in parts:
        return "zh-Hans"
    for part in parts[1:]:
        if part in _REGION_SCRIPT:
            return _REGION_SCRIPT[part]
    return "zh-Hant"


def from_accept_language(header: str) -> str | None:
    """The best of our languages for an Accept-Language header (RFC 9110 §12.5.4)."""
    weighted: list[tuple[float, int, str]] = []
    for index, item in enumerate(header.split(",")[:20]):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        language = normalise(tag)
        if language and quality > 0:
            weighted.append((-quality, index, language))
    return min(weighted)[2] if weighted else None


@dataclass(frozen=True)
class Translator:
    language: str

    def gettext(self, message: str, **params: object) -> str:
        text = translations(self.language).gettext(message)
        return text % params if params else text

    def ngettext(self, singular: str, plural: str, n: int, **params: object) -> str:
        text = translations(self.language).ngettext(singular, plural, n)
        return text % {"num": n, **params}
