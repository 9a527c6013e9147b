"""The files written from the models: the commented default config, the docs page, the JSON Schema.

Run `python -m motionwatch.config.render` after changing a model to rewrite
config/motionwatch.yaml and docs/configuration.md (a test fails while they
are out of date); `--check` only says whether they are.
"""

from __future__ import annotations

import inspect
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from pydantic.fields import FieldInfo

from motionwatch.config.fields import INTERNAL_FIELDS, allowed, doc_of
from motionwatch.config.models import Config
from motionwatch.config.plain import to_plain

ROOT = Path(__file__).resolve().parents[2]
YAML_FILE = "config/motionwatch.yaml"
DOCS_FILE = "docs/configuration.md"
REGENERATE = "python -m motionwatch.config.render"
WIDTH = 88


def json_schema() -> dict:
    """The JSON Schema of a config file, for editors with a YAML language server."""
    schema = TypeAdapter(Config).json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"


# --- what each field says about itself --------------------------------------------

def _fields(model: type) -> dict[str, FieldInfo]:
    return {n: i for n, i in model.__pydantic_fields__.items() if n not in INTERNAL_FIELDS}


def _sub_model(info: FieldInfo) -> type | None:
    """The model a section field holds (itself or as list items), None for a plain value."""
    ann = info.annotation
    if getattr(ann, "__origin__", None) is tuple:
        ann = ann.__args__[0]
    return ann if hasattr(ann, "__pydantic_fields__") else None


def _default(info: FieldInfo) -> Any:
    return info.default_factory() if info.default_factory is not None else info.default


def _flow(value: Any) -> str:
    """A value as one line of YAML."""
    import yaml
    return yaml.safe_dump(to_plain(value), default_flow_style=True).removesuffix("\n...\n").strip()


def _short(value: Any) -> str:
    """A default as the comments show it: 10, not 10.0."""
    return f"{value:g}" if isinstance(value, float) else _flow(value)


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _facts(info: FieldInfo) -> str:
    """Allowed values and default, as one line."""
    if info.is_required():
        return f"Allowed: {allowed(info)}. Required."
    if _sub_model(info) is not None:
        return f"Default: {_flow(_default(info))}"
    return f"Allowed: {allowed(info)}. Default: {_short(_default(info))}"


def _intro(model: type) -> str:
    return " ".join(inspect.cleandoc(model.__doc__ or "").split())


def _section_intro(info: FieldInfo, model: type) -> str:
    """A section's docstring; a list's says what the list holds first."""
    if isinstance(_default(info), tuple):
        return f"{_sentence(info.description)} {_intro(model)}"
    return _intro(model)


# --- config/motionwatch.yaml -----------------------------------------------------------

def _comment(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, WIDTH - len(indent) - 2, initial_indent=f"{indent}# ",
                         subsequent_indent=f"{indent}# ", break_on_hyphens=False)


def _field_lines(name: str, info: FieldInfo, value: Any, indent: str) -> list[str]:
    out = _comment(_sentence(info.description), indent)
    # Notes keep their own line breaks: some are tables a re-wrap would spoil.
    out += [f"{indent}# {line}".rstrip() for line in doc_of(info).notes.splitlines()]
    out += _comment(_facts(info), indent)
    out.append(f"{indent}{name}: {_flow(value)}")
    return out


def _model_lines(model: type, obj: Any, indent: str) -> list[str]:
    out = []
    for name, info in _fields(model).items():
        out += _field_lines(name, info, getattr(obj, name), indent)
    return out


def _entry_lines(model: type, entries: tuple, indent: str) -> list[str]:
    """List entries: `- ` on an entry's first line, its fields indented under it."""
    out = []
    for entry in entries:
        lines = _model_lines(model, entry, indent + "  ")
        out += [indent + "- " + lines[0].lstrip()] + lines[1:]
    return out


def _example_entry(model: type) -> list[str]:
    """An empty list's entries described in comments, one key a line."""
    out = ["# Each entry:"]
    for name, info in _fields(model).items():
        out += textwrap.wrap(f"{name}: {_sentence(info.description)} {_facts(info)}", WIDTH,
                             initial_indent="#   ", subsequent_indent="#     ", break_on_hyphens=False)
    return out


def default_yaml() -> str:
    cfg = Config()
    out = [f"# {_intro(Config)}",
           f"# Generated from motionwatch/config/models.py by `{REGENERATE}`.",
           "# The values below are the built-in defaults; delete any line to keep its default.",
           "# Check a config with:  motionwatch check-config PATH",
           "# Unknown keys, wrong types and out-of-range values are errors (exit code 2).",
           "# Editor completion and checking: motionwatch check-config --schema (docs/configuration.md)."]
    for name, info in _fields(Config).items():
        model = _sub_model(info)
        value = getattr(cfg, name)
        out += ["", f"# --- {name} " + "-" * (WIDTH - 7 - len(name))]
        out += _comment(_section_intro(info, model), "")
        if isinstance(value, tuple) and value:
            out += [f"{name}:"] + _entry_lines(model, value, "  ")
        elif isinstance(value, tuple):
            out += _example_entry(model) + [f"{name}: []"]
        else:
            out += [f"{name}:"] + _model_lines(model, value, "  ")
    return "\n".join(out) + "\n"


# --- docs/configuration.md ---------------------------------------------------------------

DOCS_INTRO = """\
# Configuration

<!-- Generated from motionwatch/config/models.py by `{regenerate}`: edit the models, not this page. -->

motionwatch reads one YAML file, given with `--config PATH` to any command. Without
`--config` it uses the built-in defaults, which are exactly `config/motionwatch.yaml`: the
fully commented default file, with every key's meaning, unit, default and range. It is
shown in full [at the end of this page](#the-default-file).

To make your own:

```sh
cp config/motionwatch.yaml motionwatch.yaml      # then edit it
motionwatch check-config motionwatch.yaml        # validate and print the effective settings
motionwatch run --config motionwatch.yaml
```

Delete any line to keep its default. Unknown keys, wrong types and out-of-range values are
errors: one line naming the file, line, key path, the bad value and what is allowed, with a
"did you mean" for misspelt keys, and exit code 2:

```
$ motionwatch check-config my.yaml
motionwatch: error: my.yaml:7: detection.pixel_treshold: unknown key; did you mean 'pixel_threshold'? allowed keys: width, blur, ...
```

`check-config` also prints the settings in effect, with the web and MQTT passwords and
passwords in camera URLs hidden. `--source` on the command line replaces the configured
cameras with one, and `--recordings DIR` replaces `recordings.path`.

## Completion and checking in your editor

`motionwatch check-config --schema` prints the config's JSON Schema. Editors with a YAML
language server (VS Code with the Red Hat YAML extension, Neovim or Helix with
`yaml-language-server`) then complete keys, show each key's meaning on hover and mark
unknown keys and out-of-range values while you type. Save the schema beside your config
and name it on the config's first line:

```sh
motionwatch check-config --schema > motionwatch.schema.json
sed -i '1i # yaml-language-server: $schema=./motionwatch.schema.json' motionwatch.yaml
```

The editor checks types and ranges; `motionwatch check-config` also checks what needs the
machine (files, programs, folders, passwords).

## The settings
"""

DOCS_END = """
## The default file

`config/motionwatch.yaml`, as it is in this checkout:

<!-- include: config/motionwatch.yaml -->
"""

# Where each section's behaviour is explained at length.
SEE_ALSO = {
    "cameras": "[source kinds](cameras.md#source-kinds), [masks](detecting.md#masks)",
    "detection": "[Detecting motion](detecting.md)",
    "events": "[Recording](recording.md)",
    "recordings": "[Retention](recording.md#retention-never-fill-the-disk)",
    "web": "[Review](review.md)",
    "hooks": "[Running unattended](unattended.md#hooks)",
    "webhooks": "[Webhooks](unattended.md#webhooks)",
    "mqtt": "[MQTT and Home Assistant](unattended.md#mqtt-and-home-assistant)",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;")


def _table(model: type, prefix: str) -> list[str]:
    rows = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    for name, info in _fields(model).items():
        default = "required" if info.is_required() else f"`{_flow(_default(info))}`"
        what = "keys of `detection`" if _sub_model(info) else allowed(info)
        rows.append(f"| `{prefix}{name}` | {_cell(default)} | {_cell(what)} | {_cell(_sentence(info.description))} |")
    return rows


def docs_page() -> str:
    out = [DOCS_INTRO.format(regenerate=REGENERATE)]
    for name, info in _fields(Config).items():
        model = _sub_model(info)
        prefix = f"{name}[]." if isinstance(_default(info), tuple) else f"{name}."
        out += [f"### {name}", "", _section_intro(info, model)
                + (f" More: {SEE_ALSO[name]}." if name in SEE_ALSO else ""), ""]
        out += _table(model, prefix) + [""]
    return "\n".join(out) + DOCS_END


# --- writing and checking ---------------------------------------------------------------

GENERATED = {YAML_FILE: default_yaml, DOCS_FILE: docs_page}


def stale(root: Path = ROOT) -> list[str]:
    """The generated files that differ from what the models say."""
    return [rel for rel, make in GENERATED.items()
            if not (root / rel).exists() or (root / rel).read_text() != make()]


def main(argv: list[str]) -> int:
    if not (ROOT / "pyproject.toml").exists():   # an installed copy has no files to rewrite
        print(f"{ROOT}: not a motionwatch checkout; run {REGENERATE} in one", file=sys.stderr)
        return 2
    if "--check" in argv:
        out_of_date = stale()
        for rel in out_of_date:
            print(f"{rel} is out of date; run: {REGENERATE}", file=sys.stderr)
        return 1 if out_of_date else 0
    for rel, make in GENERATED.items():
        (ROOT / rel).write_text(make())
        print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
