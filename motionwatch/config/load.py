"""Read a YAML config into a `Config`, or fail with one line a user can act on.

Every failure is a `ConfigError` naming the file, the line, the key path, the
bad value and what is allowed (with a did-you-mean for a misspelt key). The
models validate; this module finds the line and words pydantic's error.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import stat
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import TypeAdapter, ValidationError

from motionwatch.config.fields import Invalid, allowed
from motionwatch.config.models import INTERNAL_FIELDS, Config
from motionwatch.errors import ConfigError

# A config is a page of YAML. Refusing more keeps a wrong file (a video, a log,
# /dev/zero) from being read into memory, and aliases from multiplying the work.
MAX_CONFIG_BYTES = 1 << 20
MAX_KEY_PATHS = 100_000

_ADAPTER = TypeAdapter(Config)


def load_config(path: str | Path | None) -> Config:
    """Load a config file, or the built-in defaults when path is None."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        # Opened without blocking and checked before reading: a FIFO or a device
        # (/dev/zero) named as the config would otherwise hang or fill memory.
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ConfigError(f"{_shown_path(p)}: not a regular file; allowed: a YAML config file")
            data = f.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{_shown_path(p)}: larger than {MAX_CONFIG_BYTES >> 20} MiB; "
                              "allowed: a YAML config file")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{_shown_path(p)}: config file not found") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the name, or not UTF-8
        raise ConfigError(f"{_shown_path(p)}: cannot read config file: {e}") from None
    return parse_config(text, _shown_path(p))


def parse_config(text: str, filename: str = "<config>") -> Config:
    """Validate YAML text into a Config; raise ConfigError for anything wrong."""
    # Imported here: a run without a config file (most scans) never needs the
    # YAML parser, and every command's start-up pays for what it imports.
    import yaml
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else {}
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark else filename
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    except (ValueError, TypeError, RecursionError) as e:  # e.g. absurd timestamps, deep nesting
        raise ConfigError(f"{filename}: not a usable YAML document: {e}") from None
    where = _Where(filename, _record_lines(node, filename) if node is not None else {})
    if data is None:
        data = {}
    if isinstance(data, dict):
        for key in INTERNAL_FIELDS:
            if key in data:
                raise where.unknown(Config, key, key)
    try:
        cfg = _ADAPTER.validate_python(data)
    except ValidationError as e:
        raise where.first(e) from None
    except RecursionError as e:   # a YAML list that holds itself
        raise ConfigError(f"{filename}: not a usable YAML document: {e}") from None
    return dataclasses.replace(cfg, source_file=filename)


def _shown_path(p: Path) -> str:
    """A path as messages show it: one line, whatever characters it holds."""
    text = str(p)
    return text if text.isprintable() else repr(text)


def _record_lines(root, filename: str) -> dict[str, int]:
    """The line of every key path. An alias is the same node object as its anchor,
    so a node met again is not walked again: nested aliases ("billion laughs")
    would otherwise multiply the paths beyond any memory."""
    import yaml
    out: dict[str, int] = {}
    seen: set[int] = set()
    stack = [(root, "")]
    while stack:
        node, path = stack.pop()
        out.setdefault(path, node.start_mark.line + 1)
        if id(node) in seen:
            continue
        seen.add(id(node))
        if len(out) > MAX_KEY_PATHS:
            raise ConfigError(f"{filename}: more than {MAX_KEY_PATHS} keys and list items; "
                              "allowed: a config of a few hundred")
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                sub = f"{path}.{k.value}" if path else str(k.value)
                out[sub] = k.start_mark.line + 1
                stack.append((v, sub))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(node.value))
    return out


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


def _walk(loc: tuple) -> tuple[type, Any]:
    """The model that owns the last key of `loc`, and that key's FieldInfo (None if unknown)."""
    owner, info = Config, None
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(owner, "overrides", owner).__pydantic_fields__
        info = fields.get(part) if isinstance(part, str) else None
        if info is None:
            return owner, None
        owner = _model_of(info.annotation) or owner
    return owner, info


class _Where:
    """File name and line numbers of each key path, for messages."""

    def __init__(self, filename: str, lines: dict[str, int]):
        self.filename = filename
        self.lines = lines

    def fail(self, path: str, problem: str) -> ConfigError:
        line = self.lines.get(path)
        where = f"{self.filename}:{line}" if line else self.filename
        shown = path if path.isprintable() else repr(path)  # a key with a newline stays one line
        return ConfigError(f"{where}: {shown}: {problem}")

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
            owner, _ = _walk(loc[:-1])
            path = _path(loc[:-1] + (str(loc[-1]),))
            return self._at(path, self.unknown(owner, loc[-1], path))
        owner, info = _walk(loc)
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
