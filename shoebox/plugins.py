"""Loading plugins (roll checkers, callbacks) by dotted name.

A dotted name is ``"package.module:Name"`` or ``"package.module.Name"``;
attribute paths after the colon may be dotted too (``"pkg.mod:Outer.Inner"``).
Every constructor that takes a plugin takes it in one of three forms: an
instance already built, a dotted name (called with no arguments), or, in
:mod:`logging.config`'s idiom, a mapping ``{"()": dotted name, **keyword
arguments}``.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping
from typing import Any, TypeVar

from .errors import PluginNotFound

_T = TypeVar("_T")

#: How configuration names a plugin not built yet: a dotted name, or a
#: mapping ``{"()": dotted name, **keyword arguments}``.
Spec = str | Mapping[str, Any]

# Objects that moved to another module, by (old module, name): their old
# dotted names keep working, with a DeprecationWarning that says where they
# are now. The shipping callbacks left shoebox.callbacks so that writing an
# archive does not load the upload engine (issue 11).
_MOVED = {
    ("shoebox.callbacks", "CompressCallback"): "shoebox.shipping",
    ("shoebox.callbacks", "S3UploadCallback"): "shoebox.shipping",
}


def load(spec: str) -> Any:
    """Import and return the object a dotted spec names.

    Raises :class:`~shoebox.errors.PluginNotFound` (an ``ImportError``)
    saying which module or attribute was not found.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise PluginNotFound(f"plugin spec must be a non-empty string, not {spec!r}")
    spec = spec.strip()
    if ":" in spec:
        module_name, _, attr_path = spec.partition(":")
        return _resolve(spec, _import(spec, module_name), module_name, attr_path)
    # "pkg.module.Name": import the longest prefix that is a module.
    parts = spec.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and not (module_name == exc.name
                                             or module_name.startswith(exc.name + ".")):
                raise  # the module exists but one of its own imports failed
            continue
        return _resolve(spec, module, module_name, ".".join(parts[cut:]))
    raise PluginNotFound(f"plugin {spec!r}: no module {parts[0]!r} can be imported")


def create(spec: Any, **kwargs: Any) -> Any:
    """Build a plugin: a string spec is loaded and called with ``kwargs``; a
    mapping ``{"()": dotted name, **options}`` is loaded and called with its
    options and ``kwargs``; anything else is taken as an instance already
    built and returned as is.

    Raises :class:`~shoebox.errors.PluginNotFound` for a name that does not
    load, ``ValueError`` for a mapping without ``"()"``, and whatever the
    factory raises for options it refuses (``TypeError`` for an unknown one).
    """
    return _create("plugin", spec, kwargs)


def create_as(kind: type[_T], option: str, spec: Any, **kwargs: Any) -> _T:
    """:func:`create`, then check that the result is a ``kind``; ``option``
    names the option the spec was given as, for the errors."""
    plugin = _create(option, spec, kwargs)
    if not isinstance(plugin, kind):
        named = spec.get("()") if isinstance(spec, Mapping) else spec
        raise TypeError(f"{option} {named!r} gives {plugin!r}, not a {kind.__name__}")
    return plugin


def _create(option: str, spec: Any, kwargs: dict[str, Any]) -> Any:
    if isinstance(spec, Mapping):
        if "()" not in spec:
            # Its keys only: its values may hold secrets (an endpoint URL).
            raise ValueError(f"{option}: a plugin given as a mapping needs a '()' key "
                             f"naming its factory; it has {sorted(spec)!r}")
        options = {key: value for key, value in spec.items() if key != "()"}
        spec = str(spec["()"])
        kwargs = {**options, **kwargs}
    if isinstance(spec, str):
        factory = load(spec)
        if not callable(factory):
            raise PluginNotFound(f"plugin {spec!r} names {factory!r}, which is not callable")
        return factory(**kwargs)
    return spec


def _import(spec: str, module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise PluginNotFound(f"plugin {spec!r}: cannot import module {module_name!r} "
                             f"({exc})") from exc


def _resolve(spec: str, obj: Any, module_name: str, attr_path: str) -> Any:
    if not attr_path:
        raise PluginNotFound(f"plugin {spec!r} names a module, not an object in it")
    first = attr_path.partition(".")[0]
    moved_to = _MOVED.get((module_name, first))
    if moved_to is not None and not hasattr(obj, first):
        warnings.warn(f"plugin {spec!r}: {first} moved to {moved_to}; "
                      f"write {moved_to}:{attr_path}", DeprecationWarning, stacklevel=4)
        module_name, obj = moved_to, importlib.import_module(moved_to)
    where = module_name
    for attr in attr_path.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise PluginNotFound(f"plugin {spec!r}: {where!r} has no attribute "
                                 f"{attr!r}") from None
        where = f"{where}.{attr}"
    return obj
