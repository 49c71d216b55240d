"""Kubernetes objects checked against the Kubernetes API's own models (the ``kubernetes`` client,
installed with chromadb): every key a field of its object, every value of the field's type.

Written against the models' ``attribute_map`` and ``openapi_types``, which both generations of
the client have (``list[V1Container]`` / ``dict(str, str)`` up to 36, ``List[…]`` / ``Dict[…]``
from 37), so the check does not depend on which one the lock holds. Required fields are not
checked: the tests assert the ones that matter by name.
"""

from __future__ import annotations

from typing import Any

import kubernetes.client

_SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "bool": (bool,),
    "float": (int, float),
}


def api_errors(value: Any, kind: str, where: str = "") -> list[str]:
    """What in ``value`` (camelCase, as in a manifest) is not a valid ``kind``, e.g. V1PodSpec."""
    kind = kind.strip()
    lowered = kind.lower()
    if lowered.startswith("list["):
        if not isinstance(value, list):
            return [f"{where}: a list of {kind[5:-1]} expected, got {value!r}"]
        return [
            error
            for i, item in enumerate(value)
            for error in api_errors(item, kind[5:-1], f"{where}[{i}]")
        ]
    if lowered.startswith(("dict[", "dict(")):
        if not isinstance(value, dict):
            return [f"{where}: a mapping expected, got {value!r}"]
        inner = kind[kind.index(",") + 1 : -1]
        return [
            error
            for key, item in value.items()
            for error in api_errors(item, inner, f"{where}.{key}")
        ]
    if kind in _SCALARS:
        # A bool is an int to Python, never to the API.
        ok = isinstance(value, _SCALARS[kind]) and (kind == "bool" or not isinstance(value, bool))
        return [] if ok else [f"{where}: {kind} expected, got {value!r}"]
    model = getattr(kubernetes.client, kind, None)
    if model is None or not hasattr(model, "attribute_map"):
        return []  # a free-form field (object)
    if not isinstance(value, dict):
        return [f"{where}: a {kind} mapping expected, got {value!r}"]
    fields = {json_name: attr for attr, json_name in model.attribute_map.items()}
    errors = []
    for key, item in value.items():
        if key not in fields:
            errors.append(f"{where}.{key}: not a field of {kind}")
        else:
            errors += api_errors(item, model.openapi_types[fields[key]], f"{where}.{key}")
    return errors


def keys_named(value: Any, name: str) -> list[Any]:
    """Every value under a key ``name`` anywhere in ``value`` (a hostPath volume, say)."""
    if isinstance(value, dict):
        return [v for k, v in value.items() if k == name] + [
            found for v in value.values() for found in keys_named(v, name)
        ]
    if isinstance(value, list):
        return [found for item in value for found in keys_named(item, name)]
    return []
