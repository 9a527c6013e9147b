"""The files generated from the config models are current, say every field's range,
and the JSON Schema an editor uses checks a config the way `check-config` does."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from motionwatch.config import Config, parse_config
from motionwatch.config.render import GENERATED, REGENERATE, stale
from motionwatch.errors import ConfigError

from conftest import mw

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FILE = ROOT / "config" / "motionwatch.yaml"


def test_generated_files_are_up_to_date():
    out_of_date = stale()
    assert not out_of_date, f"{', '.join(out_of_date)} out of date with the config models; run: {REGENERATE}"


def test_the_freshness_check_sees_a_hand_edit(tmp_path: Path):
    for rel in GENERATED:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    assert stale(tmp_path) == []
    edited = DEFAULT_FILE.read_text().replace("jpeg_quality: 90", "jpeg_quality: 80")
    (tmp_path / "config" / "motionwatch.yaml").write_text(edited)
    assert stale(tmp_path) == ["config/motionwatch.yaml"]


def test_the_regenerate_command_checks_from_a_shell():
    """The command the failure message names exists and, with --check, agrees."""
    proc = subprocess.run([sys.executable, "-m", "motionwatch.config.render", "--check"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def _numeric_keys() -> list[tuple[str, str]]:
    out = []
    for section, info in Config.__pydantic_fields__.items():
        model = getattr(info.annotation, "__args__", [info.annotation])[0]
        for name, sub in getattr(model, "__pydantic_fields__", {}).items():
            if sub.annotation in (int, float):
                out.append((section, name))
    return out


@pytest.mark.parametrize("section, key", _numeric_keys())
def test_every_number_in_the_default_file_says_its_range_and_default(section, key):
    text = DEFAULT_FILE.read_text()
    block = text[text.index(f"# --- {section} "):]
    lines = block.splitlines()
    at = next(i for i, ln in enumerate(lines) if re.match(rf"\s*(- |#   )?{key}: ", ln))
    if lines[at].startswith("#"):   # an entry of an empty list, described in comments
        comment = " ".join([lines[at]] + [ln for ln in lines[at + 1:at + 3] if ln.startswith("#     ")])
    else:
        comment = lines[at - 1]
    assert re.search(r"\d\.\.\d", comment) and "Default: " in comment, comment


def test_every_field_has_a_description():
    def walk(model):
        for name, info in model.__pydantic_fields__.items():
            if name == "source_file":
                continue
            assert info.description and "\n" not in info.description, f"{model.__name__}.{name}"
            sub = getattr(info.annotation, "__args__", [info.annotation])[0]
            if hasattr(sub, "__pydantic_fields__"):
                walk(sub)
    walk(Config)


@pytest.fixture(scope="module")
def schema() -> dict:
    proc = mw("check-config", "--schema", check=True)
    return json.loads(proc.stdout)


@pytest.mark.parametrize("text", [
    DEFAULT_FILE.read_text(),
    "detection:\nevents:\n",                      # sections left empty keep their defaults
    "cameras:\n  - name: door\n    source: 0\n    detection:\n      width: 640\n",
    "webhooks:\n  - url: https://example.org/hook\n",
])
def test_the_schema_accepts_what_motionwatch_accepts(schema, text):
    parse_config(text, "good.yaml")
    jsonschema.validate(yaml.safe_load(text), schema)


@pytest.mark.parametrize("text", [
    "detection:\n  pixel_treshold: 20\n",
    "detection:\n  trigger_fraction: 1.5\n",
    "detection:\n  pixel_threshold: lots\n",
    "events:\n  gap_seconds: soon\n",
    "events:\n  clip_codec: h265\n",
    "cameras:\n  - name: a\n    mask: [[1, 2]]\n",
    "cameras:\n  - name: a\n    detection: {width: 10}\n",
    "cameras:\n  - name: a\n    detection: {treshold: 3}\n",
    "cameras:\n  - name: 'a b'\n",
    "webhooks:\n  - snapshot: true\n",
    "hooks:\n  on_event_end: notify-send\n",
    "web:\n  port: 0\n",
])
def test_the_editor_and_check_config_refuse_alike(schema, text):
    """What a YAML language server marks as wrong, motionwatch refuses too."""
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(text), schema)
    with pytest.raises(ConfigError):
        parse_config(text, "bad.yaml")


def test_the_schema_describes_each_key_for_hover(schema):
    width = schema["$defs"]["DetectionConfig"]["properties"]["width"]
    assert width["minimum"] == 32 and width["maximum"] == 1920 and width["default"] == 320
    assert "width in pixels" in width["description"]
    assert "never upscaled" in width["markdownDescription"]
    assert "source_file" not in json.dumps(schema)
