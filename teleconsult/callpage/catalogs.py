"""The call page's message catalogs, one JSON file per language with the same keys, and
the language a page is shown in.

A text is a string, or its plural forms by the browser's `Intl.PluralRules` categories
(`{"one": ..., "other": ...}`: the page picks one, the server never counts). Built-in
catalogs are in `texts/`; `CALL_PAGE_TEXTS_DIR` adds languages (every key) or overrides
built-in texts (any keys) without code. Language tags are BCP 47 and matched with Babel
(`de-CH` is served by `de`, case aside); Babel has no `Accept-Language` reader, so the
header's list is only split and ordered by its weights here.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from babel.core import Locale, UnknownLocaleError, negotiate_locale

from teleconsult.errors import ConfigurationError

log = logging.getLogger("teleconsult.callpage")

Text = str | Mapping[str, str]
Catalog = Mapping[str, Text]

PLURAL_CATEGORIES = frozenset({"zero", "one", "two", "few", "many", "other"})
"""`Intl.PluralRules`' categories (CLDR's)."""
MAX_ACCEPTED = 20
"""The first languages of an `Accept-Language` header read; the rest are noise."""
MAX_LOGGED = 256
"""Distinct unserved languages logged per app, so a crafted header cannot flood the log."""
_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


class Catalogs:
    """Every language's texts, and which of them serves a participant."""

    def __init__(self, catalogs: Mapping[str, Catalog], default_language: str) -> None:
        self.catalogs = dict(catalogs)
        self._by_lower = {language.lower(): language for language in catalogs}
        found = self.match(default_language, log_unserved=False)
        if found is None:
            raise ConfigurationError(
                f"CALL_PAGE_DEFAULT_LANGUAGE must be a language of the call page's catalogs "
                f"({', '.join(sorted(catalogs))}); got {default_language!r}."
            )
        self.default_language = found
        self._logged: set[str] = set()

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(sorted(self.catalogs))

    def __getitem__(self, language: str) -> Catalog:
        return self.catalogs[language]

    def text(self, language: str, key: str) -> str:
        """A text the server writes itself (the ending pages): never a plural."""
        found = self.catalogs[language][key]
        return found if isinstance(found, str) else found["other"]

    def match(self, tag: str | None, *, log_unserved: bool = True) -> str | None:
        """The catalog that serves a BCP 47 tag (`de-CH` is `de`), or None; a tag no catalog
        serves is logged once, at info, with the fallback."""
        if not tag or not _TAG.match(tag.strip()):
            return None
        found = negotiate_locale([tag.strip()], list(self.catalogs), sep="-", aliases={})
        if found is not None:
            return self._by_lower[found.lower()]
        if log_unserved and len(self._logged) < MAX_LOGGED and tag.lower() not in self._logged:
            self._logged.add(tag.lower())
            log.info(
                "call page: no catalog serves the language %r; the browser's language or %r "
                "is used instead",
                tag,
                self.default_language,
            )
        return None

    def negotiate(self, participant: str | None, accept_language: str | None) -> str:
        """The page's language: the participant's, else the browser's first that a catalog
        serves, else `CALL_PAGE_DEFAULT_LANGUAGE`."""
        for tag in (participant, *accepted(accept_language)):
            found = self.match(tag, log_unserved=tag == participant)
            if found is not None:
                return found
        return self.default_language


def accepted(header: str | None) -> list[str]:
    """An `Accept-Language` header's tags by weight, best first (`*` and `q=0` dropped)."""
    weighted: list[tuple[float, int, str]] = []
    for position, item in enumerate((header or "").split(",")[:MAX_ACCEPTED]):
        tag, _, parameters = item.strip().partition(";")
        weight = 1.0
        name, _, value = parameters.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                weight = float(value)
            except ValueError:
                continue
        if tag.strip() and tag.strip() != "*" and weight > 0:
            weighted.append((-weight, position, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]


def load(texts_dir: str, default_language: str) -> Catalogs:
    """The built-in catalogs with the folder's over them (a bad file stops the start, named)."""
    catalogs: dict[str, Catalog] = dict(BUILT_IN)
    if texts_dir:
        for language, catalog in _folder(Path(texts_dir)):
            base = catalogs.get(language)
            if base is None:
                _same_keys(catalog, language)
                catalogs[language] = catalog
            else:
                unknown = set(catalog) - set(base)
                if unknown:
                    raise ConfigurationError(
                        f"{texts_dir}/{language}.json: unknown keys {', '.join(sorted(unknown))}."
                    )
                catalogs[language] = {**base, **catalog}
    return Catalogs(catalogs, default_language)


def _folder(folder: Path) -> Iterable[tuple[str, Catalog]]:
    if not folder.is_dir():
        raise ConfigurationError(f"CALL_PAGE_TEXTS_DIR must be a folder; {folder} is not one.")
    for path in sorted(folder.glob("*.json")):
        language = path.stem
        try:
            if not _TAG.match(language):
                raise UnknownLocaleError(language)
            Locale.parse(language, sep="-")
        except (UnknownLocaleError, ValueError):
            raise ConfigurationError(
                f"{path}: the file's name must be a language tag Babel knows (de.json, pt-BR.json)."
            ) from None
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigurationError(f"{path}: cannot read the catalog: {error}.") from None
        yield language, _catalog(text, str(path))


def _catalog(text: str, origin: str) -> Catalog:
    """A catalog's JSON, checked: an object of strings or plural forms."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"{origin}: not valid JSON: {error}.") from None
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{origin}: a catalog is a JSON object of texts.")
    for key, value in raw.items():
        plural = isinstance(value, dict) and "other" in value and set(value) <= PLURAL_CATEGORIES
        if not (isinstance(value, str) or plural) or (
            isinstance(value, dict) and not all(isinstance(v, str) for v in value.values())
        ):
            raise ConfigurationError(
                f"{origin}: {key!r} must be a text or plural forms with 'other'."
            )
    return raw


def _same_keys(catalog: Catalog, language: str) -> None:
    missing = set(BUILT_IN[REFERENCE]) - set(catalog)
    unknown = set(catalog) - set(BUILT_IN[REFERENCE])
    if missing or unknown:
        raise ConfigurationError(
            f"the call page's catalog {language!r} must have every key of the built-in ones: "
            f"missing {', '.join(sorted(missing)) or 'none'}; unknown "
            f"{', '.join(sorted(unknown)) or 'none'}."
        )


def built_in() -> dict[str, Catalog]:
    """The catalogs shipped in `texts/`, by language."""
    folder = resources.files(__package__) / "texts"
    return {
        item.name.removesuffix(".json"): _catalog(item.read_text(encoding="utf-8"), item.name)
        for item in folder.iterdir()
        if item.name.endswith(".json")
    }


BUILT_IN: Mapping[str, Catalog] = MappingProxyType(built_in())
REFERENCE = "en"
"""The catalog whose keys every other must have."""
