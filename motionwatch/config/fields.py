"""The kinds of value a setting can hold, with their bounds and documentation.

Each helper returns a pydantic `Field` that carries everything the loader's
messages, the commented default file, the docs page and the JSON Schema say
about a setting: a one-line description, bounds, a unit, and longer notes.
Values a type and bounds cannot describe (a polygon list, a camera source, a
command) have a parser that raises `Invalid` with what is allowed.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import AfterValidator, Field, PlainValidator, WithJsonSchema
from pydantic.fields import FieldInfo


# Fields that are not settings: never read from a file, never shown or documented.
INTERNAL_FIELDS = ("source_file",)


class Invalid(ValueError):
    """A value a parser refuses: `allowed` says what would be accepted.

    `problem` replaces "is not allowed"; `at` points below the field (an item
    of a list); `value` replaces the value shown in the message."""

    NO_VALUE = object()

    def __init__(self, allowed: str, problem: str = "is not allowed", at: tuple = (),
                 value: Any = NO_VALUE):
        super().__init__(allowed)
        self.allowed, self.problem, self.at, self.value = allowed, problem, at, value


class Doc:
    """A field's documentation beyond its one-line description.

    Pydantic calls it while writing the JSON Schema: editors with a YAML
    language server show `markdownDescription` on hover."""

    def __init__(self, notes: str = "", unit: str = "", allowed: str = ""):
        self.notes, self.unit, self.allowed = notes, unit, allowed

    def __call__(self, schema: dict) -> None:
        text = schema.get("description", "")
        if self.notes:
            text += "\n\n" + self.notes
        schema["markdownDescription"] = text


def _field(default: Any, description: str, doc: Doc, **kw) -> Any:
    if callable(default):
        return Field(default_factory=default, description=description, json_schema_extra=doc, **kw)
    return Field(default, description=description, json_schema_extra=doc, **kw)


def number(default: float, description: str, lo: float, hi: float, *, unit: str = "", notes: str = "") -> Any:
    """A float in lo..hi (an integer in the file is fine; NaN and infinity are not)."""
    return _field(default, description, Doc(notes, unit), ge=lo, le=hi, strict=True, allow_inf_nan=False)


def integer(default: int, description: str, lo: int, hi: int, *, unit: str = "", notes: str = "",
            allowed: str = "") -> Any:
    """An integer in lo..hi (1.0, "1" or true are refused: they are typing slips)."""
    return _field(default, description, Doc(notes, unit, allowed), ge=lo, le=hi, strict=True)


def flag(default: bool, description: str, *, notes: str = "") -> Any:
    """true or false (not 0/1 or "yes")."""
    return _field(default, description, Doc(notes), strict=True)


def text(default: str | None, description: str, *, notes: str = "") -> Any:
    """A string (or null when the field's type allows it)."""
    return _field(default, description, Doc(notes), strict=True)


def parsed(default: Any, description: str, *, notes: str = "") -> Any:
    """A value whose type carries its own parser (see the Annotated types below)."""
    return _field(default, description, Doc(notes))


def section(factory: Any, description: str, *, notes: str = "") -> Any:
    """A nested section or list of entries."""
    return _field(factory, description, Doc(notes))


# --- values a type cannot describe ---------------------------------------------

def _parse_threshold(v: Any) -> int | str:
    if isinstance(v, str) and v.lower() in ("auto", "otsu"):
        return v.lower()
    if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 254:
        return v
    raise Invalid('an integer 1..254, "auto" or "otsu"')


def _parse_polygons(v: Any) -> tuple:
    allowed = "a list of polygons, each a list of at least 3 [x, y] points in source pixels"
    if v is None:
        return ()
    if not isinstance(v, (list, tuple)):
        raise Invalid(allowed)
    polys = []
    for poly in v:
        if not isinstance(poly, (list, tuple)) or len(poly) < 3:
            raise Invalid(allowed)
        pts = []
        for p in poly:
            if (not isinstance(p, (list, tuple)) or len(p) != 2
                    or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in p)):
                raise Invalid(allowed)
            pts.append((float(p[0]), float(p[1])))
        polys.append(tuple(pts))
    return tuple(polys)


def _parse_command(v: Any) -> tuple[str, ...] | None:
    if v is None:
        return None
    if isinstance(v, (list, tuple)) and v and all(isinstance(a, str) and a for a in v):
        return tuple(v)
    raise Invalid('null or a list of strings: the program and its arguments, '
                  'e.g. ["/usr/local/bin/notify", "--fast"] (no shell is used)')


def _parse_source(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return str(v)
    if isinstance(v, str) and v.strip():
        return v.strip()
    raise Invalid("a camera index (0), a device path, a URL, a video file, pipe:COMMAND, picamera2[:N] or demo")


# The recordings root holds one folder per camera beside the index and its side
# files (events.db-wal, events.db.damaged-*); a camera folder of such a name
# would be the index itself. Compared without case: a USB disk may be FAT/exFAT.
RESERVED_NAME_PREFIX = "events.db"


def _parse_hosts(v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    ok = r"(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]{0,252})|\[?[0-9A-Fa-f:.]+\]?"
    if isinstance(v, (list, tuple)) and all(isinstance(h, str) and re.fullmatch(ok, h) for h in v):
        return tuple(h.strip("[]").lower() for h in v)
    raise Invalid('a list of host names or addresses the browser uses for this server, without port, '
                  'e.g. ["pi.local", "192.168.1.20", "*.home.example"]')


def _parse_proxies(v: Any) -> tuple[str, ...]:
    import ipaddress
    if v is None:
        return ()
    if isinstance(v, (list, tuple)) and all(isinstance(a, str) for a in v):
        try:
            return tuple(str(ipaddress.ip_network(a.strip(), strict=False)) for a in v)
        except ValueError:
            pass
    raise Invalid('a list of addresses or networks of reverse proxies in front of this server, '
                  'e.g. ["127.0.0.1"] or ["192.168.1.0/24"]')


def parse_name(v: Any) -> str:
    """A camera name that is safe as a folder name and an MQTT topic level."""
    if isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", v):
        if not v.lower().startswith(RESERVED_NAME_PREFIX):
            return v
    raise Invalid("1-64 characters of letters, digits, '_', '-' or '.', starting with a letter or digit, "
                  f"and not starting with {RESERVED_NAME_PREFIX!r} (the index's name in the recordings folder)")


def parse_folder(v: Any) -> str:
    """A folder path that can be printed on one line and passed to the OS."""
    if isinstance(v, str) and v.strip() and v.isprintable():
        return v
    raise Invalid("a folder path: not empty, no NUL bytes, line breaks or other control characters")


def _parse_webhook_url(v: Any) -> str:
    if isinstance(v, str) and v.isprintable() and v.lower().startswith(("http://", "https://")):
        return v
    raise Invalid("an http:// or https:// URL")


def _odd(v: Any) -> int:
    if v % 2 == 0:
        raise Invalid("an odd integer 1..31", problem="is even")
    return v


def _parsed_by(parse, schema: dict):
    return (PlainValidator(parse), WithJsonSchema(schema))


_POINT = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
_COMMAND = {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}

Threshold = Annotated[int | str, *_parsed_by(_parse_threshold, {
    "anyOf": [{"type": "integer", "minimum": 1, "maximum": 254}, {"enum": ["auto", "otsu"]}]})]
Polygons = Annotated[tuple, *_parsed_by(_parse_polygons, {
    "type": "array", "items": {"type": "array", "items": _POINT, "minItems": 3}})]
Command = Annotated[tuple | None, *_parsed_by(_parse_command, {"anyOf": [_COMMAND, {"type": "null"}]})]
Hosts = Annotated[tuple, *_parsed_by(_parse_hosts, {"type": "array", "items": {"type": "string"}})]
Proxies = Annotated[tuple, *_parsed_by(_parse_proxies, {"type": "array", "items": {"type": "string"}})]
Source = Annotated[str, *_parsed_by(_parse_source, {
    "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "minLength": 1}]})]
Name = Annotated[str, *_parsed_by(parse_name, {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"})]
Folder = Annotated[str, *_parsed_by(parse_folder, {"type": "string", "minLength": 1})]
WebhookUrl = Annotated[str, *_parsed_by(_parse_webhook_url, {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"})]
Odd = Annotated[int, AfterValidator(_odd)]


# --- what is allowed, in words (messages, comments, docs) --------------------------

_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def bounds(info: FieldInfo) -> tuple[float | None, float | None]:
    """The field's ge/le bounds, None where it has none."""
    lo = next((m.ge for m in info.metadata if getattr(m, "ge", None) is not None), None)
    hi = next((m.le for m in info.metadata if getattr(m, "le", None) is not None), None)
    return lo, hi


def doc_of(info: FieldInfo) -> Doc:
    extra = info.json_schema_extra
    return extra if isinstance(extra, Doc) else Doc()


def allowed(info: FieldInfo) -> str:
    """What a field accepts, e.g. "a number 0..600 (seconds)" or "one of best, first, both"."""
    doc = doc_of(info)
    if doc.allowed:
        return doc.allowed
    parser = next((m for m in info.metadata if isinstance(m, PlainValidator)), None)
    if parser is not None:
        try:
            parser.func(object())   # every parser refuses an object, saying what it allows
        except Invalid as e:
            return e.allowed
    ann, optional = _unwrap_optional(info.annotation)
    if get_origin(ann) is Literal:
        text = "one of " + ", ".join(str(a) for a in get_args(ann))
    else:
        text = _TYPE_NAMES.get(ann, "a value")
        lo, hi = bounds(info)
        if lo is not None and hi is not None:
            text += f" {_number(lo)}..{_number(hi)}"
        if doc.unit:
            text += f" ({doc.unit})"
    return text + (" or null" if optional else "")


def _number(v: float) -> str:
    """10 for 10.0, 0.0001 as it is, 1000000 rather than 1e+06."""
    return f"{v:.0f}" if abs(v) >= 1e5 and v == int(v) else f"{v:g}"


def _unwrap_optional(ann: Any) -> tuple[Any, bool]:
    args = get_args(ann)
    if type(None) in args and len(args) == 2:
        return next(a for a in args if a is not type(None)), True
    return ann, False
