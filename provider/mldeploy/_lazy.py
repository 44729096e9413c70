"""Modules imported on first use, so that a Pulumi program's ``import mldeploy`` stays cheap.

Every ``pulumi`` command starts the user's program, which imports mldeploy only to
construct resources, and the dynamic provider process, which unpickles each provider.
The modules built on pydantic (the document's JSON files, image references and
requirements, conda environments) cost about 85 ms to import, pydantic itself most
of it; the program needs them only when an inference config names a
``baseImageRegistry``. Resource modules therefore hold them as ``LazyModule``s:

    if TYPE_CHECKING:
        from .. import refs
    else:
        refs = LazyModule("mldeploy.refs")

Each attribute access goes through ``importlib.import_module``, which is thread-safe
(the provider serves gRPC calls on several threads; ``importlib.util.LazyLoader`` is
not thread-safe on Python 3.11) and, once the module is loaded, a dictionary lookup.
Nothing is cached here, so a test's ``monkeypatch`` of the real module is seen.
"""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """Stands for the module ``name``; imports it at the first attribute access."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        raise AttributeError(f"set {attr} on the module {self._name} itself, not on its lazy stand-in")

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"
