"""What is made of the settings' declarations: the settings page's table, `--help`, typo warnings.

The core declares its variables on its settings classes (`declarations.setting`), and
each provider plugin its own on the settings class its registration names
(`VideoProviderPlugin.settings`, `IdentityProviderPlugin.settings`). Each declaration
reads as a `Setting`; from them
come the table of docs/settings.md (`teleconsult settings --markdown`; a test compares the two),
the list in `teleconsult --help`, and the warning for a variable that looks like one
of them but is not (`IMMUTABLE_PERIOD` for `IMMUTABLE_PERIOD_MS`).
"""

from __future__ import annotations

import difflib
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from teleconsult.configuration.secrets import FILE_SUFFIX
from teleconsult.errors import ConfigurationError


@dataclass(frozen=True)
class Setting:
    """One environment variable, as docs/settings.md's table and `teleconsult --help` show it."""

    name: str
    default: str
    """What an unset or blank variable reads as; "" when it stays unset."""
    meaning: str
    """The table's third column (Markdown, on one line)."""
    secret: bool = False
    """It holds a secret: its value may instead be in a
    file whose path `<name>_FILE` gives, as container platforms mount secrets."""
    aliases: tuple[str, ...] = ()
    """Other names read for it (an older spelling): known, so never warned about."""
    minimum: int | None = None
    maximum: int | None = None

    @property
    def bounds(self) -> str:
        """`at least 0 and at most 65535`, as error lines and the documentation say it."""
        upper = f" and at most {self.maximum}" if self.maximum is not None else ""
        return f"at least {self.minimum}{upper}" if self.minimum is not None else ""

    @property
    def names(self) -> tuple[str, ...]:
        """Every variable this setting is read from."""
        return (self.name, *((self.name + FILE_SUFFIX,) if self.secret else ()), *self.aliases)

    @property
    def markdown_default(self) -> str:
        return f"`{self.default}`" if self.default else "(unset)"

    @property
    def described(self) -> str:
        """The meaning and, for a secret, that it may come from a file instead."""
        if not self.secret:
            return self.meaning
        return f"{self.meaning}; or `{self.name}{FILE_SUFFIX}`, the path of a file that holds it"

    @property
    def markdown_meaning(self) -> str:
        """The table's third column: the meaning, then the bounds."""
        return f"{self.described} ({self.bounds})" if self.bounds else self.described


@dataclass(frozen=True)
class Section:
    """The settings of one part: the core, or one provider."""

    title: str
    settings: tuple[Setting, ...]


def defaults(settings: Iterable[Setting]) -> dict[str, str]:
    """Each setting's default by name, as the environment spells it."""
    return {setting.name: setting.default for setting in settings}


def merged(sections: Iterable[Section]) -> list[Section]:
    """The sections with every variable once: a setting two providers of one plugin share
    is listed under the first; one declared twice differently stops the start."""
    seen: dict[str, tuple[str, Setting]] = {}
    result = []
    for section in sections:
        kept = []
        for setting in section.settings:
            for name in setting.names:
                if name in seen and seen[name][1] != setting:
                    raise ConfigurationError(
                        f"{name} is declared by both {seen[name][0]} and {section.title}."
                    )
            if setting.name not in seen:
                kept.append(setting)
                seen.update((name, (section.title, setting)) for name in setting.names)
        if kept:
            result.append(Section(section.title, tuple(kept)))
    return result


def secret_names(sections: Iterable[Section]) -> list[str]:
    """The settings that hold a secret, each of which may come from `<name>_FILE`."""
    return [s.name for section in sections for s in section.settings if s.secret]


def markdown_table(sections: Iterable[Section]) -> str:
    """The table of environment variables (docs/settings.md)."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for section in sections:
        lines += [
            f"| `{s.name}` | {s.markdown_default} | {s.markdown_meaning} |"
            for s in section.settings
        ]
    return "\n".join(lines) + "\n"


def plain(markdown: str) -> str:
    """A table cell as a terminal shows it: without the code quotes."""
    return markdown.replace("`", "")


def help_text(sections: Iterable[Section], width: int = 79) -> str:
    """The settings as `teleconsult --help` lists them: `NAME=default` (or `NAME (unset)`),
    then the meaning, wrapped."""
    wrap = textwrap.TextWrapper(
        width=width,
        initial_indent=" " * 6,
        subsequent_indent=" " * 6,
        break_long_words=False,
        break_on_hyphens=False,
    )
    lines = [
        "settings (environment variables; an unset or blank one takes its default):",
    ]
    for section in sections:
        lines += ["", f"{section.title}:"]
        for setting in section.settings:
            default = f"={setting.default}" if setting.default else " (unset)"
            lines += [f"  {setting.name}{default}", *wrap.wrap(plain(setting.described))]
            if setting.bounds:
                lines += wrap.wrap(f"({setting.bounds})")
    return "\n".join(lines) + "\n"


FOREIGN_VARIABLES = frozenset({"HTTP_PROXY"})
"""Variables of other software whose first word is one of ours (aiohttp ignores it)."""
_KUBERNETES_SERVICE_LINK = re.compile(
    r"^[A-Z0-9_]+_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)"
    r"(_PROTO|_PORT|_ADDR)?)?)$"
)
"""What Kubernetes sets for each Service of the namespace (`MONGODB_PORT=tcp://...`)."""
CLOSE = 0.8
"""How alike a variable must be to one of ours (difflib's ratio) to look like ours..."""
CLOSE_SAME_WORD = 0.6
"""... or, when it starts with the first word of one of ours (`JWT_`, `BANDYER_`), this."""


def unknown_variables(
    environ: Mapping[str, str], sections: Sequence[Section]
) -> list[tuple[str, str]]:
    """The variables that look like ours but are none of them, each with the closest one.

    A variable looks like ours when it is not known (a declared name, a secret's
    `_FILE`, an alias), is not another program's (`HTTP_PROXY`, the variables Kubernetes
    sets for Services), and one of ours is close to it: difflib's ratio at least `CLOSE`,
    or `CLOSE_SAME_WORD` when it starts with the first word of one of ours. So
    `IMMUTABLE_PERIOD`, `HTTP_POR` and `BANDYER_API_KEY` are warned about; `PATH`,
    `HOME` and `KUBERNETES_SERVICE_HOST` never are.
    """
    settings = [setting for section in sections for setting in section.settings]
    known = {name for setting in settings for name in setting.names}
    candidates = [s.name for s in settings] + [s.name + FILE_SUFFIX for s in settings if s.secret]
    first_words = {name.split("_", 1)[0] + "_" for name in known}
    found = []
    for variable in sorted(environ):
        if (
            variable in known
            or variable in FOREIGN_VARIABLES
            or _KUBERNETES_SERVICE_LINK.match(variable)
        ):
            continue
        same_word = variable.split("_", 1)[0] + "_" in first_words and "_" in variable
        cutoff = CLOSE_SAME_WORD if same_word else CLOSE
        closest = difflib.get_close_matches(variable, candidates, n=1, cutoff=cutoff)
        if closest:
            found.append((variable, closest[0]))
    return found
