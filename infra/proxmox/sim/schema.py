"""Request validation against PVE's own API schema, the way `PVE::JSONSchema::validate` does it.

The schema is `schema/pve9.1-subset-paas.json` (the paths Dockyard uses, from PVE 9.1's apidata.js).
Every parameter is checked: unknown ones are refused, booleans are `0`/`1` only (proxmoxer sends Python
`True` as "True", which PVE refuses), integers and numbers by their text, then format, pattern, lengths,
minimum/maximum and enumeration, in PVE's order and with PVE's messages. Indexed keys (`net[n]`, `mp[n]`)
stand for `net0`..`net31` and so on. Property strings (`net0: name=eth0,bridge=vmbr0`) are parsed as
`parse_property_string` does: default key, aliases, and each part checked against its own schema.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.proxmox.sim.base import parameter_error
from infra.proxmox.sim.formats import HASH_FORMATS, verifier

SUBSET_FILE = Path(__file__).parent / "schema" / "pve9.1-subset-paas.json"
FULL_SCHEMA_NAME = "pve9.1-api-schema.json"

# How many of each indexed key PVE defines (net0..net31, mp0..mp255, ...).
INDEX_COUNT = {
    "net": 32,
    "mp": 256,
    "unused": 256,
    "dev": 256,
    "ide": 4,
    "sata": 6,
    "scsi": 31,
    "virtio": 16,
    "hostpci": 16,
    "usb": 14,
    "numa": 8,
    "serial": 4,
    "parallel": 3,
    "ipconfig": 32,
    "virtiofs": 10,
}

NOT_DEFINED = "property is not defined in schema and the schema does not allow additional properties"
MISSING = "property is missing and it is not optional"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # the template: /nodes/{node}/lxc/{vmid}/clone
    info: dict[str, Any]

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self.info.get("parameters", {}).get("properties", {}))

    @property
    def proxyto_node(self) -> bool:
        return self.info.get("proxyto") == "node"

    @property
    def permissions(self) -> dict[str, Any]:
        return dict(self.info.get("permissions", {}))


class Schema:
    def __init__(self, subset: dict[str, Any], full_paths: set[tuple[str, str]] | None = None) -> None:
        self.endpoints = {
            (method, path): Endpoint(method, path, info)
            for path, methods in subset.items()
            for method, info in methods.items()
        }
        self._patterns = [(_path_regex(path), path) for path in subset]
        self.full_paths = full_paths

    @classmethod
    def load(cls, full_schema: Path | None = None) -> Schema:
        subset = json.loads(SUBSET_FILE.read_text())
        full_paths = _full_paths(json.loads(full_schema.read_text())) if full_schema else None
        return cls(subset, full_paths)

    def match(self, method: str, path: str) -> tuple[Endpoint, dict[str, str]] | None:
        for regex, template in self._patterns:
            if (found := regex.fullmatch(path)) and (endpoint := self.endpoints.get((method, template))):
                return endpoint, found.groupdict()
        return None

    def in_full_api(self, method: str, path: str) -> bool | None:
        """Whether PVE itself has `method path` (None when the full schema was not given)."""
        if self.full_paths is None:
            return None
        return any(m == method and _path_regex(p).fullmatch(path) for m, p in self.full_paths)


def _path_regex(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)))


def _full_paths(tree: list[dict[str, Any]]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    stack = list(tree)
    while stack:
        entry = stack.pop()
        found.update((method, entry["path"]) for method in entry.get("info", {}))
        stack.extend(entry.get("children", []))
    return found


# --- validation


def validate(endpoint: Endpoint, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters, typed (bool, int, float, str, list), or a 400 listing every parameter at fault."""
    properties = endpoint.properties
    errors: dict[str, str] = {}
    typed: dict[str, Any] = {}
    schemas = {name: _schema_for(properties, name) for name in params}
    for name, schema in properties.items():
        if "[n]" not in name and name not in params:
            _check(None, schema, name, errors)
    for name, value in params.items():
        if (schema := schemas[name]) is None:
            _add(errors, name, NOT_DEFINED)
            continue
        result = _check(value, schema, name, errors)
        if result is not None:
            typed[name] = result
        if (requires := schema.get("requires")) and requires not in params:
            _add(errors, requires, f"missing property - '{name}' requires this property")
    if errors:
        raise parameter_error(errors, by_schema=True)
    return typed


def _schema_for(properties: dict[str, Any], name: str) -> dict[str, Any] | None:
    if name in properties and "[n]" not in name:
        return dict(properties[name])
    found = re.fullmatch(r"([a-z]+)(\d+)", name)
    if found and f"{found[1]}[n]" in properties and int(found[2]) < INDEX_COUNT.get(found[1], 0):
        if found[2] == str(int(found[2])):  # net01 is not net1
            return dict(properties[f"{found[1]}[n]"])
    return None


def _add(errors: dict[str, str], path: str, message: str) -> None:
    path = path or "_root"
    errors[path] = f"{errors[path]}\\n{message}" if path in errors else message


def _check(value: Any, schema: dict[str, Any], path: str, errors: dict[str, str]) -> Any:
    """PVE's check_prop: the typed value, or None after adding an error."""
    if value is None:
        if not schema.get("optional") and not schema.get("alias"):
            _add(errors, path, MISSING)
        return None
    kind = schema.get("type")
    typed = _check_type(value, kind, path, errors)
    if typed is None:
        return None
    if kind == "array":
        item_schema = schema.get("items", {})
        checked = [_check(item, item_schema, f"{path}[{i}]", errors) for i, item in enumerate(typed)]
        return None if any(item is None for item in checked) else checked
    text = _text(typed)
    if (fmt := schema.get("format")) is not None:
        try:
            _check_format(fmt, text, path)
        except ValueError as exc:
            _add(errors, path, f"invalid format - {exc}\n")
            return None
    if (pattern := schema.get("pattern")) and not re.fullmatch(_python_regex(pattern), text, re.DOTALL):
        _add(errors, path, "value does not match the regex pattern")
        return None
    if (longest := schema.get("maxLength")) is not None and len(text) > int(longest):
        _add(errors, path, f"value may only be {longest} characters long")
        return None
    if (shortest := schema.get("minLength")) is not None and len(text) < int(shortest):
        _add(errors, path, f"value must be at least {shortest} characters long")
        return None
    if _is_number(text):
        if (highest := schema.get("maximum")) is not None and float(text) > float(highest):
            _add(errors, path, f"value must have a maximum value of {highest}")
            return None
        if (lowest := schema.get("minimum")) is not None and float(text) < float(lowest):
            _add(errors, path, f"value must have a minimum value of {lowest}")
            return None
    if (choices := schema.get("enum")) is not None and text not in [str(choice) for choice in choices]:
        _add(errors, path, f"value '{text}' does not have a value in the enumeration '{', '.join(choices)}'")
        return None
    return typed


def _check_type(value: Any, kind: str | None, path: str, errors: dict[str, str]) -> Any:
    if kind == "array":
        return value if isinstance(value, list) else [value]
    if isinstance(value, list | dict):
        _add(
            errors,
            path,
            f"type check ('{kind}') failed - got {'ARRAY' if isinstance(value, list) else 'HASH'}",
        )
        return None
    if isinstance(value, bool) and kind != "boolean":
        _add(errors, path, f"type check ('{kind}') failed - got JSON::PP::Boolean")
        return None
    text = _text(value)
    if kind == "boolean":
        if isinstance(value, bool) or text in ("0", "1"):
            return bool(value) if isinstance(value, bool) else text == "1"
    elif kind == "integer":
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
    elif kind == "number":
        if _is_number(text):
            return float(text)
    else:
        return text
    _add(errors, path, f"type check ('{kind}') failed - got '{text}'")
    return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_number(text: str) -> bool:
    return re.fullmatch(r"[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?", text) is not None


def _python_regex(pattern: str) -> str:
    return pattern.replace("(?^:", "(?:").replace("(?^i:", "(?i:")


def _check_format(fmt: Any, value: str, path: str) -> None:
    if isinstance(fmt, dict):
        parse_property_string(fmt, value, path)
    elif fmt in HASH_FORMATS:
        parse_property_string(HASH_FORMATS[fmt], value, path)
    elif (verify := verifier(str(fmt))) is not None:
        verify(value)


def parse_property_string(fmt: dict[str, Any], data: str, path: str = "") -> dict[str, Any]:
    """`key=value,key=value` (plus a value without key for the default key), checked part by part."""
    parsed: dict[str, Any] = {}
    default_key = next((key for key, schema in fmt.items() if schema.get("default_key")), None)
    for part in data.split(","):
        if not part.strip():
            continue
        if found := re.fullmatch(r"([^=]+)=(.+)", part, re.DOTALL):
            key, value = found[1], found[2]
            if key in parsed:
                raise ValueError(f"duplicate key in comma-separated list property: {key}")
            schema = fmt.get(key)
            if schema and (alias := schema.get("alias")):
                if key_alias := schema.get("keyAlias"):
                    parsed[key_alias] = key
                key, schema = alias, fmt.get(alias)
            if not schema:
                raise ValueError(f"invalid key in comma-separated list property: {key}")
            if schema.get("type") == "boolean":
                value = _parse_boolean(value)
            parsed[key] = value
        elif "=" not in part:
            if default_key is None:
                raise ValueError("value without key, but schema does not define a default key")
            if default_key in parsed:
                raise ValueError(f"duplicate key in comma-separated list property: {default_key}")
            parsed[default_key] = part
        else:
            raise ValueError("missing key in comma-separated list property")
    errors: dict[str, str] = {}
    for key, schema in fmt.items():
        if "alias" not in schema:
            _check(parsed.get(key), schema, f"{path}.{key}" if path else key, errors)
    for key in parsed:
        if key not in fmt:
            _add(errors, f"{path}.{key}" if path else key, NOT_DEFINED)
    if errors:
        raise ValueError("format error\n" + "\n".join(f"{key}: {errors[key]}" for key in sorted(errors)))
    return parsed


def _parse_boolean(value: str) -> str:
    lowered = value.lower()
    if lowered in ("1", "on", "yes", "true"):
        return "1"
    if lowered in ("0", "off", "no", "false"):
        return "0"
    return value
