"""Property tests: whatever a user writes, the config loader and the source parser
answer with a valid config or one ConfigError/SourceError line, never another
exception (which would reach the user as a traceback)."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motionwatch.config import CameraConfig, Config, WebhookConfig, parse_config
from motionwatch.errors import ConfigError, SourceError
from motionwatch.sources import open_source, source_kind

DEFAULT_YAML = (Path(__file__).resolve().parents[1] / "config" / "motionwatch.yaml").read_text()
FUZZ = settings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", 150)), deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Every section and key path the loader knows, so generated documents reach the
# per-field validation instead of stopping at "unknown key".
SECTIONS = [name for name in Config.__pydantic_fields__ if name != "source_file"]
ITEMS = {"cameras": CameraConfig, "webhooks": WebhookConfig}


def _keys(section: str) -> list[str]:
    model = ITEMS.get(section) or Config.__pydantic_fields__[section].annotation
    return list(model.__pydantic_fields__)


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["auto", "otsu", "best", "first", "both", "demo", "0", "-1", "1e400", ".nan",
                     "", " ", "~", "yes", "0x1F", "2026-11-25", "12:30:00", "pipe:", "http://"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)


@st.composite
def documents(draw) -> object:
    """A mapping of known sections and keys (plus some unknown ones) to arbitrary values."""
    doc: dict = {}
    for section in draw(st.lists(st.sampled_from(sorted(SECTIONS) + ["detektion", ""]), max_size=4)):
        keys = _keys(section) if section in SECTIONS else []
        body = draw(st.one_of(
            values,
            st.dictionaries(st.sampled_from(keys + ["bogus"]), values, max_size=4),
            st.lists(st.dictionaries(st.sampled_from(_keys("cameras") + ["nmae"]), values, max_size=4),
                     max_size=3),
        ))
        doc[section] = body
    return draw(st.one_of(st.just(doc), values))


def loads_or_config_error(text: str) -> None:
    try:
        cfg = parse_config(text, "fuzz.yaml")
    except ConfigError as e:
        msg = str(e)
        assert msg.startswith("fuzz.yaml") and "\n" not in msg.strip(), msg
        return
    assert isinstance(cfg, Config) and cfg.cameras
    for section in ("detection", "events", "recordings"):
        for f in dataclasses.fields(getattr(cfg, section)):
            v = getattr(cfg, section).__getattribute__(f.name)
            assert not (isinstance(v, float) and math.isnan(v)), f"{section}.{f.name} is NaN"


@FUZZ
@given(st.text(max_size=300))
def test_any_text_is_a_config_or_a_config_error(text):
    loads_or_config_error(text)


@FUZZ
@given(documents())
def test_any_yaml_document_is_a_config_or_a_config_error(doc):
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except (yaml.YAMLError, RecursionError):
        pytest.skip("not representable as YAML")
    loads_or_config_error(text)


@FUZZ
@given(st.data())
def test_the_default_file_with_one_value_changed(data):
    """Real-looking configs: the commented default with one value replaced by anything."""
    lines = DEFAULT_YAML.splitlines()
    spots = [i for i, ln in enumerate(lines) if re.match(r"^\s*(- )?[a-z_]+: \S", ln) and not ln.lstrip().startswith("#")]
    i = data.draw(st.sampled_from(spots))
    key = lines[i].split(":", 1)[0]
    new = data.draw(st.one_of(st.text(max_size=20).map(lambda t: t.replace("\n", " ")),
                              scalars.map(lambda v: yaml.safe_dump(v, default_flow_style=True).split("\n...")[0].strip())))
    lines[i] = f"{key}: {new}"
    loads_or_config_error("\n".join(lines))


KINDS = {"demo", "pipe", "picamera2", "camera", "stream", "file"}
# Source strings that are safe to open here: no command is run (pipe:) and nothing
# leaves the machine (any URL points at a closed port on loopback).
safe_sources = st.one_of(
    st.text(max_size=40).filter(lambda s: not s.startswith("pipe:")),
    st.from_regex(r"\A(rtsp|http|https|rtmp|tcp)://127\.0\.0\.1:1/[ -~]{0,20}\Z"),
    st.from_regex(r"\A(/dev/[a-z0-9]{0,8}|[0-9]{1,25}|demo:[ -~]{0,10}|picamera2[:0-9x]{0,12})\Z"),
)


@settings(max_examples=120, deadline=None)
@given(st.text(max_size=60))
def test_source_kind_never_fails(spec):
    assert source_kind(spec) in KINDS


@settings(max_examples=120, deadline=None)
@given(st.text(max_size=60))
def test_any_source_string_in_a_config_is_valid_or_a_config_error(spec):
    loads_or_config_error(yaml.safe_dump({"cameras": [{"name": "cam", "source": spec}]}))


@settings(max_examples=40, deadline=None)
@given(safe_sources)
def test_opening_any_source_string_is_a_source_or_a_source_error(spec):
    try:
        src = open_source(spec, scan=True, timeout=1.0)
    except (SourceError, ConfigError) as e:
        assert str(e).strip() and "\n" not in str(e).strip()
        return
    src.close()
