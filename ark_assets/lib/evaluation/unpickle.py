"""Reading MedArk's ``records.pkl`` as plain data, without running anything the file names.

MedArk's agent inference pickles its records with classes defined in the script itself, so the
file names them as ``__main__.AskAction`` and so on, next to langchain's ``AIMessage`` and
``Document``. ``pickle.load`` would import and call whatever the file names: an uploaded pickle
is code. ``load_plain`` resolves only an allowlist of names, each to a stand-in that records
the state it is given, and turns the result into dicts, lists and scalars; any other name stops
the load with ``UnsafePickle`` before anything is called.

The allowlist was read off MedArk's released records (protocol 4: every object is ``NEWOBJ``
with no arguments, then ``BUILD`` with pydantic's state dict) and covers pickles written at
protocols 0-3 (``copyreg._reconstructor``, ``__builtin__.set``).
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from typing import Any, Final

from ark_assets.lib.ingest.dialogues import shown_name

CLASS_KEY: Final = "__class__"  # the stand-in's class name, in the dict it becomes

# The pydantic models MedArk's scripts define (classdef.py beside its records); the first
# four are the agent's actions and the teacher's response, the rest appear inside ``all_meta``.
MEDARK_CLASSES: Final = frozenset(
    {
        "RetrievalAction",
        "AskAction",
        "TellAction",
        "Response",
        "MedicalAskContent",
        "RetrievalRequest",
        "RefinedResult",
        "ReasoningCheck",
    }
)
LANGCHAIN_CLASSES: Final = frozenset(
    {
        ("langchain_core.messages.ai", "AIMessage"),
        ("langchain_core.messages.human", "HumanMessage"),
        ("langchain_core.messages.system", "SystemMessage"),
        ("langchain_core.messages.tool", "ToolMessage"),
        ("langchain_core.documents.base", "Document"),
    }
)
_SCALARS = (str, int, float, bool, bytes, complex, type(None))
_KEYS = (str, int, float, bool, type(None))  # what a JSON excerpt of the result can hold


class UnsafePickle(pickle.UnpicklingError):
    """The pickle names a global outside the allowlist; nothing it names was imported."""


class PickledObject:
    """Stand-in for an allowed class: keeps the constructor arguments and the pickled state."""

    args: tuple[Any, ...]
    state: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> PickledObject:
        instance = super().__new__(cls)
        instance.args = args
        instance.state = None
        return instance

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass  # the arguments were kept by __new__; a stand-in has no behaviour

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _reconstructor(cls: Any, base: Any, state: Any) -> PickledObject:
    """``copyreg._reconstructor`` (protocols 0-1) for the stand-ins only."""
    if not (isinstance(cls, type) and issubclass(cls, PickledObject)):
        raise UnsafePickle(f"copyreg._reconstructor called on a {type(cls).__name__}")
    return cls() if state is None else cls(state)


# Callables that only build containers (or a stand-in) from their arguments; the Python 2
# spellings are what protocols 0-2 write.
_SAFE_GLOBALS: Final[dict[tuple[str, str], Any]] = {
    ("builtins", "set"): set,
    ("__builtin__", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "frozenset"): frozenset,
    ("builtins", "object"): object,
    ("__builtin__", "object"): object,
    ("collections", "OrderedDict"): OrderedDict,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("copy_reg", "_reconstructor"): _reconstructor,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the allowlisted names, each load with fresh stand-ins."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self._stand_ins: dict[tuple[str, str], type[PickledObject]] = {}

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[key]
        if (module == "__main__" and name in MEDARK_CLASSES) or key in LANGCHAIN_CLASSES:
            if key not in self._stand_ins:
                self._stand_ins[key] = type(name, (PickledObject,), {})
            return self._stand_ins[key]
        raise UnsafePickle(
            f"the pickle refers to {shown_name(name)} from module {shown_name(module)}, which is "
            "not one of MedArk's record classes; nothing it names was imported or run (only "
            "plain data, MedArk's action classes and langchain messages are read)"
        )


def load_plain(data: bytes) -> Any:
    """The pickle's content as dicts, lists and scalars; stand-ins become dicts with CLASS_KEY.

    Raises ``UnsafePickle`` for a disallowed global, ``pickle.UnpicklingError`` for anything
    else that is not a readable pickle of plain data.
    """
    try:
        loaded = RestrictedUnpickler(io.BytesIO(data)).load()
    except UnsafePickle:
        raise
    # A corrupt pickle raises whatever the failing opcode raises (EOFError, ValueError,
    # TypeError, struct.error, MemoryError ...); all mean the same thing to the caller.
    except Exception as err:
        # The error text may quote the file's bytes: only its type goes into the message.
        raise pickle.UnpicklingError(f"not a readable pickle ({type(err).__name__})") from err
    try:
        return _to_plain(loaded, {})
    except RecursionError as err:
        raise pickle.UnpicklingError("the pickle nests too deeply to read") from err


def _to_plain(value: Any, seen: dict[int, Any]) -> Any:
    """Convert once per object (shared references stay shared, cycles terminate)."""
    if isinstance(value, _SCALARS):
        return value
    if id(value) in seen:
        return seen[id(value)]
    if isinstance(value, PickledObject):
        out: dict[Any, Any] = {CLASS_KEY: type(value).__name__}
        seen[id(value)] = out
        # Item by item: the fields dict is a temporary, its id must not enter ``seen``.
        for key, item in _fields(value).items():
            out[_plain_key(key)] = _to_plain(item, seen)
        return out
    if isinstance(value, dict):  # OrderedDict included; insertion order is kept
        plain: dict[Any, Any] = {}
        seen[id(value)] = plain
        for key, item in value.items():
            plain[_plain_key(key)] = _to_plain(item, seen)
        return plain
    if isinstance(value, list | set | frozenset):
        items: list[Any] = []
        seen[id(value)] = items
        items.extend(_to_plain(item, seen) for item in value)
        return items
    if isinstance(value, tuple):
        # Memoized too: a pickle can share one tuple twice per level, 2^depth paths.
        converted = tuple(_to_plain(item, seen) for item in value)
        seen[id(value)] = converted
        return converted
    if isinstance(value, bytearray):
        return bytes(value)
    raise pickle.UnpicklingError(f"the pickle holds a {type(value).__name__}, not plain data")


def _plain_key(key: Any) -> Any:
    if not isinstance(key, _KEYS):
        raise pickle.UnpicklingError(f"a dict key is a {type(key).__name__}, not plain data")
    return key


def _fields(value: PickledObject) -> dict[Any, Any]:
    """A stand-in's field values from the state its class pickled.

    pydantic (v1 and v2) pickles ``{"__dict__": fields, ...}``; a plain object pickles its
    ``__dict__``, or ``(dict, slots)`` with ``__slots__``.
    """
    state = value.state
    if isinstance(state, tuple) and len(state) == 2:
        merged: dict[Any, Any] = {}
        for part in state:
            if isinstance(part, dict):
                merged.update(part)
        state = merged
    if not isinstance(state, dict):
        return {"args": value.args} if value.args else {}
    fields = state.get("__dict__")
    if isinstance(fields, dict):
        extra = state.get("__pydantic_extra__")
        return {**fields, **extra} if isinstance(extra, dict) else dict(fields)
    return dict(state)
