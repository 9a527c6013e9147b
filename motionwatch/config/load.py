"""Read a YAML config into a `Config`, or fail with one line a user can act on.

Every failure is a `ConfigError` naming the file, the line, the key path, the
bad value and what is allowed (with a did-you-mean for a misspelt key). The
models validate; this module finds each key's line for messages.py to word.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from motionwatch.config.fields import INTERNAL_FIELDS
from motionwatch.config.messages import Where
from motionwatch.config.models import Config
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
        # libyaml's parser where PyYAML has it (its wheels do): the same nodes and marks,
        # several times faster than the pure-Python one on a long file.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
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
    where = Where(Config, filename, _record_lines(node, filename) if node is not None else {})
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
