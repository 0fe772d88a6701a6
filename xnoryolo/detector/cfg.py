"""Darknet `.cfg` reader: typed options that remember their line and whether anything read them.

Lexing follows darknet's parser.c: every space, tab and CR is removed from a line (so
`mask = 3, 4,5` is `mask=3,4,5`), `#`/`;` start comment lines, `[name]` starts a section,
`key=value` splits at the first `=`, and for a repeated key the first occurrence wins.
Values are parsed strictly (darknet's atoi/atof would silently accept garbage); only a
trailing `#comment` is tolerated, as real cfgs carry those.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CfgError, CfgWarning
from .files import UnreadableFile, read_small_file

_STRIP = str.maketrans("", "", " \t\r\n\f\v")


@dataclass
class Option:
    key: str
    value: str
    line: int
    used: bool = False


@dataclass
class Section:
    """One `[name]` block; getters parse the value and mark the option used."""

    name: str
    line: int
    path: str
    options: dict[str, Option] = field(default_factory=dict)

    def error(self, message: str, key: str | None = None) -> CfgError:
        opt = self.options.get(key) if key else None
        return CfgError(self.path, opt.line if opt else self.line, message)

    def has(self, key: str) -> bool:
        return key in self.options

    def _take(self, key: str) -> Option | None:
        opt = self.options.get(key)
        if opt is not None:
            opt.used = True
        return opt

    def _value(self, opt: Option) -> str:
        value = opt.value.split("#", 1)[0]
        if not value:
            raise CfgError(self.path, opt.line, f"[{self.name}] {opt.key}= has no value")
        return value

    def get_str(self, key: str, default: str) -> str:
        opt = self._take(key)
        return default if opt is None else self._value(opt)

    def get_int(self, key: str, default: int) -> int:
        opt = self._take(key)
        if opt is None:
            return default
        return self._parse_int(opt, self._value(opt))

    def get_float(self, key: str, default: float) -> float:
        opt = self._take(key)
        if opt is None:
            return default
        return self._parse_float(opt, self._value(opt))

    def get_ints(self, key: str, default: Sequence[int] | None = None) -> list[int] | None:
        opt = self._take(key)
        if opt is None:
            return None if default is None else list(default)
        return [self._parse_int(opt, v) for v in self._items(opt)]

    def get_floats(self, key: str) -> list[float] | None:
        opt = self._take(key)
        if opt is None:
            return None
        return [self._parse_float(opt, v) for v in self._items(opt)]

    def _items(self, opt: Option) -> list[str]:
        items = self._value(opt).split(",")
        if items and items[-1] == "":  # darknet tolerates one trailing comma
            items = items[:-1]
        if not items or any(v == "" for v in items):
            raise CfgError(self.path, opt.line, f"[{self.name}] {opt.key}= has an empty list item")
        return items

    def _parse_int(self, opt: Option, text: str) -> int:
        try:
            return int(text, 10)
        except ValueError:
            raise CfgError(
                self.path, opt.line, f"[{self.name}] {opt.key}={opt.value}: not an integer"
            ) from None

    def _parse_float(self, opt: Option, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise CfgError(
                self.path, opt.line, f"[{self.name}] {opt.key}={opt.value}: not a number"
            ) from None
        if value != value or value in (float("inf"), float("-inf")):
            raise CfgError(self.path, opt.line, f"[{self.name}] {opt.key}={opt.value}: not finite")
        return value

    def warn_unused(self, ignored: Iterable[str] = ()) -> None:
        """Warn about every option nothing read, except darknet's training-only keys."""
        ignored = set(ignored)
        used = [k for k, o in self.options.items() if o.used]
        for opt in self.options.values():
            if opt.used or opt.key in ignored:
                continue
            hint = difflib.get_close_matches(opt.key, used + sorted(ignored), n=1)
            more = f" (did you mean {hint[0]}=?)" if hint else ""
            warnings.warn(
                f"{self.path}:{opt.line}: [{self.name}] unknown option {opt.key}= ignored{more}",
                CfgWarning,
                stacklevel=3,
            )


@dataclass
class Cfg:
    path: str
    sections: list[Section]


def parse_cfg_text(text: str, path: str = "<cfg>") -> Cfg:
    sections: list[Section] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.translate(_STRIP)
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if not line.endswith("]") or len(line) < 3:
                raise CfgError(path, lineno, f"malformed section header {raw.strip()!r}")
            sections.append(Section(line[1:-1], lineno, path))
            continue
        if "=" not in line:
            raise CfgError(path, lineno, f"expected key=value or [section], got {raw.strip()!r}")
        key, value = line.split("=", 1)
        if not key:
            raise CfgError(path, lineno, f"missing key before '=' in {raw.strip()!r}")
        if not value:
            raise CfgError(path, lineno, f"{key}= has no value")
        if not sections:
            raise CfgError(path, lineno, f"option {key}= appears before any [section]")
        section = sections[-1]
        first = section.options.get(key)
        if first is not None:
            warnings.warn(
                f"{path}:{lineno}: [{section.name}] duplicate {key}= ignored; "
                f"the first one (line {first.line}) wins, as in darknet",
                CfgWarning,
                stacklevel=2,
            )
            continue
        section.options[key] = Option(key, value, lineno)
    if not sections:
        raise CfgError(path, None, "no sections: not a darknet cfg")
    return Cfg(path, sections)


# The largest real cfgs are tens of KB; anything this big is not one (and is not read whole).
MAX_CFG_BYTES = 4 << 20


def read_cfg(path: str | Path) -> Cfg:
    p = Path(path)
    try:
        data = read_small_file(p, MAX_CFG_BYTES)
    except UnreadableFile as exc:
        raise CfgError(p, None, f"{exc}: not a darknet cfg") from None
    except OSError as exc:
        raise CfgError(p, None, f"cannot read cfg: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if "\x00" in text:
        raise CfgError(p, None, "binary data: not a darknet cfg (weights file given as --cfg?)")
    return parse_cfg_text(text, str(p))
