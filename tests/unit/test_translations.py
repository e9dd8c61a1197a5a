"""The gettext catalogues: complete, faithful to their placeholders, current with the sources, and in use.

After changing any user-facing text, run `make messages` and translate the new entries in both catalogues.
"""

from __future__ import annotations

import configparser
import re
from collections import Counter
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from bauhinia.core.i18n import LANGUAGE_COOKIE, LOCALE_DIR, babel_id

REPO_ROOT = Path(__file__).resolve().parents[2]
TRANSLATED = ("zh-Hant", "zh-Hans")

ENGLISH_WORDS = re.compile(r"[A-Za-z]{2,} [A-Za-z]{2,}")
# A printf-style conversion as Python's % operator reads it: %(name)s, %s, %5.2f, %%.
CONVERSION = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(?:\d+|\*)?(?:\.(?:\d+|\*))?[hlL]?[diouxXeEfFgGcrsa%]")


@cache
def catalogue(language: str) -> Catalog:
    with (LOCALE_DIR / babel_id(language) / "LC_MESSAGES" / "messages.po").open("rb") as file:
        return read_po(file, locale=babel_id(language))


def entries(language: str) -> list[Message]:
    return [message for message in catalogue(language) if message.id]


def _texts(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _conversions(text: str) -> Counter[str]:
    return Counter(CONVERSION.findall(text))


def extract_sources() -> set[str]:
    """Every msgid in the sources, extracted as `make messages` does (babel.cfg, with N_ as a keyword)."""
    config = configparser.RawConfigParser()
    config.read(REPO_ROOT / "babel.cfg", encoding="utf-8")
    method_map: list[tuple[str, str]] = []
    options_map: dict[str, dict[str, Any]] = {}
    for section in config.sections():
        method, _, pattern = (part.strip() for part in section.partition(":"))
        assert pattern, f"babel.cfg section [{section}] is not [method: pattern]"
        method_map.append((pattern, method))
        options_map[pattern] = dict(config.items(section))
    found: set[str] = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        REPO_ROOT, method_map, options_map, keywords={**DEFAULT_KEYWORDS, "N_": None}
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated_and_none_is_fuzzy(language: str) -> None:
    assert not catalogue(language).fuzzy, f"the {language} catalogue header is fuzzy, so it would not be compiled"
    untranslated = [message.id for message in entries(language) if not all(_texts(message.string) or ("",))]
    fuzzy = [message.id for message in entries(language) if message.fuzzy]
    assert entries(language), f"the {language} catalogue is empty"
    assert untranslated == [], f"{language}: {len(untranslated)} untranslated"
    assert fuzzy == [], f"{language}: {len(fuzzy)} fuzzy"


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_every_placeholder(language: str) -> None:
    wrong: list[tuple[str, str]] = []
    for message in entries(language):
        # A plural entry's forms follow msgid_plural (Chinese has one form).
        source = _texts(message.id)[-1]
        for text in _texts(message.string):
            # Jinja's new-style gettext %-formats every string, so a stray % would break the page.
            stray = CONVERSION.sub("", text).count("%")
            if _conversions(text) != _conversions(source) or stray:
                wrong.append((source, text))
    assert wrong == [], f"{language}: placeholders dropped, changed or added"


def test_placeholder_pattern_reads_python_conversions() -> None:
    assert _conversions("%(count)s left, %(minutes)d min, 100%%") == Counter(["%(count)s", "%(minutes)d", "%%"])
    assert _conversions("尚餘 %(count)s 個") != _conversions("%(count)s left %(name)s")


@pytest.mark.parametrize("language", TRANSLATED)
def test_catalogues_hold_every_message_in_the_sources(language: str) -> None:
    extracted = extract_sources()
    assert len(extracted) > 100, "extraction found almost nothing: is babel.cfg still right?"
    known = {_texts(message.id)[0] for message in entries(language)}
    missing = sorted(extracted - known)
    assert missing == [], f"{language} is stale, run `make messages` and translate: {missing}"


class _VisibleText(HTMLParser):
    """The text a person reads or hears: text nodes outside script and style, and labelling attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.html_lang: str | None = None
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "html":
            self.html_lang = attributes.get("lang")
        if tag in ("script", "style"):
            self._hidden += 1
        for name in ("aria-label", "alt", "title", "placeholder"):
            if value := attributes.get(name):
                self.texts.append(" ".join(value.split()))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden and (text := " ".join(data.split())):
            self.texts.append(text)


async def _start_page(client: httpx.AsyncClient, language: str) -> _VisibleText:
    response = await client.get("/", headers={"cookie": f"{LANGUAGE_COOKIE}={language}"})
    assert response.status_code == 200
    page = _VisibleText()
    page.feed(response.text)
    page.close()
    return page


@pytest.mark.parametrize("language", TRANSLATED)
async def test_start_page_is_wholly_translated(client: httpx.AsyncClient, language: str) -> None:
    page = await _start_page(client, language)
    assert page.html_lang == language
    heading = catalogue(language)["One account for government services"]
    assert heading is not None
    assert heading.string in page.texts
    # Whole strings from the catalogue left in English, or any run of English words (only "Bauhinia" stays Latin).
    english = {_texts(message.id)[0] for message in entries(language) if message.string != message.id}
    untranslated = [text for text in page.texts if text in english or ENGLISH_WORDS.search(text)]
    assert untranslated == [], f"English left on the {language} start page"


async def test_start_page_in_english(client: httpx.AsyncClient) -> None:
    page = await _start_page(client, "en")
    assert page.html_lang == "en"
    assert "One account for government services" in page.texts
