"""`Registry`: named things of one kind that users add to without editing cknet.

As timm's and torchvision's model registries do, each kind has a register/create
pair: ``register_graph(name, factory)`` then ``KnowledgeGraph.by_name(name)``,
``register_backbone(name, factory)`` then ``CKNetConfig(backbone=name)``,
``register_dataset(name, preset)`` then ``CKNetConfig(dataset=name)``, and
``register_knowledge_source(cls)`` then ``CKNetConfig(knowledge_source=cls.name)``;
installed packages reach the command line through `load_plugins`.
Every ``register_*`` function also works as a decorator (``@register_backbone("mine")``
above a factory, ``@register_knowledge_source`` above a class).
A registry reads like a mapping (``name in registry``, ``registry[name]``,
``sorted(registry)``) but changes only through `Registry.register`. As in timm,
registering a name again (re-running a notebook cell) replaces the earlier item with a
`RegistrationWarning`; cknet's built-in names are never replaced, so a saved folder
naming one always means what it meant.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownName(KeyError, ValueError):
    """A name no item is registered under: a `KeyError` (as a mapping raises) and a
    `ValueError` (as cknet's argument checks raise)."""

    def __str__(self) -> str:
        return str(self.args[0])


class RegistrationWarning(UserWarning):
    """A name registered again: the new item replaces the earlier one."""


class Registry(Mapping[str, T], Generic[T]):
    """Named items of one kind.

    Args:
        kind: what the items are, for messages (``"knowledge graph"``).
        items: the built-in items by name (never replaced).
    """

    def __init__(self, kind: str, items: Mapping[str, T] | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = dict(items or {})
        self._built_in = set(self._items)

    def register(self, name: str, item: T, built_in: bool = False) -> T:
        """Add ``item`` under ``name``; a name registered before by a user is given to
        ``item`` with a `RegistrationWarning` (as re-running a notebook cell does).

        Args:
            name: a non-empty name; registering the same item again under it is silent.
            item: what the name stands for.
            built_in: cknet's own item (never replaced afterwards).

        Returns:
            ``item``.

        Raises:
            ValueError: for an empty name, or one of cknet's built-in names.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} needs a non-empty name, got {name!r}")
        taken = self._items.get(name)
        if taken is not None and taken != item:
            if name in self._built_in:
                raise ValueError(f"{name!r} is one of cknet's built-in {self.kind} names; "
                                 f"choose another name")
            warnings.warn(f"the {self.kind} {name!r} is registered again: the new one replaces the earlier",
                          RegistrationWarning, stacklevel=3)
        self._items[name] = item
        if built_in:
            self._built_in.add(name)
        return item

    def unregister(self, name: str) -> None:
        """Forget a name registered by a user (as a fresh process would not know it).

        Args:
            name: the name.

        Raises:
            ValueError: for one of cknet's built-in names.
            UnknownName: for a name not registered.
        """
        if name in self._built_in:
            raise ValueError(f"{name!r} is one of cknet's built-in {self.kind} names; it cannot be removed")
        self[name]  # raises UnknownName, listing the names, for one not registered
        del self._items[name]

    def __getitem__(self, name: str) -> T:
        if name not in self._items:
            raise UnknownName(f"no {self.kind} is registered as {name!r} (registered: {sorted(self._items)})")
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


PLUGIN_GROUP = "cknet.plugins"


def load_plugins() -> list[str]:
    """Import the modules that installed packages list under the ``cknet.plugins`` entry
    point group, so that what they register (backbones, graphs, dataset presets,
    knowledge sources) is known to the ``cknet`` commands. A package declares one in its
    ``pyproject.toml``: ``[project.entry-points."cknet.plugins"] mine = "mypkg.cknet_parts"``.

    Plugins are loaded once per process (`cknet.CKNet.from_pretrained` calls this too, so
    that a model naming a plugin's parts loads in a fresh process). A plugin that fails
    to import is skipped with a one-line `UserWarning` naming it, and one that registers
    a name another plugin registered replaces it with a `RegistrationWarning` naming both:
    the rest of cknet keeps working.

    Returns:
        The entry points loaded, by name.
    """
    from importlib.metadata import entry_points

    if _PLUGINS_LOADED:
        return list(_PLUGINS_LOADED[0])
    loaded = []
    for entry in entry_points(group=PLUGIN_GROUP):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", RegistrationWarning)
                entry.load()
            for warning in caught:
                named = f"the cknet plugin {entry.name!r} ({entry.value}): {warning.message}"
                warnings.warn_explicit(named if warning.category is RegistrationWarning else warning.message,
                                       warning.category, warning.filename, warning.lineno)
        except Exception as err:  # a broken plugin must not break cknet for everyone
            warnings.warn(f"the cknet plugin {entry.name!r} ({entry.value}) was skipped: "
                          f"{type(err).__name__}: "
                          f"{err}", UserWarning, stacklevel=2)
            continue
        loaded.append(entry.name)
    _PLUGINS_LOADED.append(loaded)
    return list(loaded)


_PLUGINS_LOADED: list[list[str]] = []  # the names loaded, once loaded
