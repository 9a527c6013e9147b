"""Pydantic's validation errors worded as one line a user can act on.

The line names the file and line (when read from a file), the key path, the
bad value and what is allowed, with a did-you-mean for a misspelt key.
"""

from __future__ import annotations

import difflib
from typing import Any, get_args, get_origin

from pydantic import ValidationError

from motionwatch.config.fields import INTERNAL_FIELDS, Invalid, allowed
from motionwatch.errors import ConfigError


def show(v: Any) -> str:
    """A value as a message shows it: YAML-like, one line, at most 60 characters."""
    if isinstance(v, str):
        text = repr(v)
    else:  # odd keys make flow-style YAML wrap; a message stays one line
        import yaml
        try:
            text = " ".join(yaml.safe_dump(v, default_flow_style=True).removesuffix("\n...\n").split())
        except (yaml.YAMLError, RecursionError):
            text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_of(annotation: Any) -> type | None:
    """The section model a field holds, itself or as the items of a list."""
    if get_origin(annotation) is tuple:
        annotation = get_args(annotation)[0]
    return annotation if hasattr(annotation, "__pydantic_fields__") else None


def _walk(root: type, loc: tuple) -> tuple[type, Any]:
    """The model that owns the last key of `loc`, and that key's FieldInfo (None if unknown)."""
    owner, info = root, None
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(owner, "overrides", owner).__pydantic_fields__
        info = fields.get(part) if isinstance(part, str) else None
        if info is None:
            return owner, None
        owner = _model_of(info.annotation) or owner
    return owner, info


class Where:
    """The model validated, and the file name and line of each key path, for messages."""

    def __init__(self, root: type, filename: str = "", lines: dict[str, int] | None = None):
        self.root = root
        self.filename = filename
        self.lines = lines or {}

    def fail(self, path: str, problem: str) -> ConfigError:
        line = self.lines.get(path)
        where = f"{self.filename}:{line}: " if line else (f"{self.filename}: " if self.filename else "")
        shown = path if path.isprintable() else repr(path)  # a key with a newline stays one line
        return ConfigError(f"{where}{shown}: {problem}")

    def unknown(self, owner: type, key: Any, path: str) -> ConfigError:
        names = [n for n in owner.__pydantic_fields__ if n not in INTERNAL_FIELDS]
        close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return self.fail(path, f"unknown key; {hint}allowed keys: {', '.join(names)}")

    def first(self, err: ValidationError) -> ConfigError:
        """The error a reader meets first in the file (pydantic reports them all)."""
        found = [self._error(e) for e in err.errors(include_url=False, include_context=True)]
        return min(found, key=lambda pe: pe[0])[1]

    def _error(self, e: dict) -> tuple[float, ConfigError]:
        loc, kind, value = tuple(e["loc"]), e["type"], e.get("input")
        ctx = e.get("ctx") or {}
        if kind in ("unexpected_keyword_argument", "invalid_key"):
            owner, _ = _walk(self.root, loc[:-1])
            path = _path(loc[:-1] + (str(loc[-1]),))
            return self._at(path, self.unknown(owner, loc[-1], path))
        owner, info = _walk(self.root, loc)
        path = _path(loc) or "(top level)"
        if kind in ("missing_argument", "missing"):
            parent = _path(loc[:-1]) or "(top level)"
            return self._at(parent, self.fail(parent, f"has no {loc[-1]}; allowed: {allowed(info)}"))
        if kind in ("dataclass_type", "dataclass_args_type"):
            return self._at(path, self.fail(path, f"{show(value)} is not a mapping of keys to values"))
        if kind in ("tuple_type", "list_type", "iterable_type"):
            what = _model_of(info.annotation).__name__ if info is not None else "list"
            return self._at(path, self.fail(path, f"{show(value)} is not a list; allowed: a list of {what} entries"))
        if kind == "value_error" and isinstance(ctx.get("error"), Invalid):
            bad = ctx["error"]
            path = _path(loc + bad.at)
            shown = "" if bad.value is None else show(value if bad.value is Invalid.NO_VALUE else bad.value) + " "
            return self._at(path, self.fail(path, f"{shown}{bad.problem}; allowed: {bad.allowed}"))
        what = allowed(info) if info is not None else "a value"
        if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
            problem = "is out of range"
        elif kind == "finite_number":
            problem = "is not a number" if value != value else "is out of range"
        elif kind == "literal_error":
            problem = "is not allowed"
        elif kind.endswith("_type") or kind.endswith("_parsing"):
            problem = "is the wrong type"
        else:
            problem = "is not allowed"
        return self._at(path, self.fail(path, f"{show(value)} {problem}; allowed: {what}"))

    def _at(self, path: str, error: ConfigError) -> tuple[float, ConfigError]:
        return self.lines.get(path, float("inf")), error
