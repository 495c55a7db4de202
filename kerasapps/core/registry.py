"""The recipe registry, filled from the ``kerasapps.recipes`` entry-point group.

Our own recipes are declared in that group exactly as another distribution would
declare its own, so this module never imports ``kerasapps.recipes``. An entry point
names a :class:`~kerasapps.core.recipe.Recipe`, an iterable of them, a callable returning
them, or a module with a ``RECIPES`` attribute.

A broken plugin breaks only itself: an entry point that fails to import, or yields
something other than recipes, is skipped with a warning naming its package; two entry
points that claim one recipe name leave that name unusable (a warning naming both, and a
one-line error when the name is asked for) and every other recipe working.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import logging
import types
from collections.abc import Iterable

from kerasapps.core.errors import KerasappsError, RecipeNotFound
from kerasapps.core.recipe import Recipe

ENTRY_POINT_GROUP = "kerasapps.recipes"
log = logging.getLogger("kerasapps")


class RegistryError(KerasappsError):
    """Two recipes claim one name, or an entry point does not yield recipes."""


class Registry:
    def __init__(self, *, load_entry_points: bool = True):
        self._recipes: dict[str, Recipe] = {}
        self._sources: dict[str, str] = {}
        self._conflicts: dict[str, list[str]] = {}  # a name two entry points claim -> their sources
        self._want_entry_points = load_entry_points
        self._entry_points_loaded = False

    def register(self, recipe: Recipe, source: str = "python") -> Recipe:
        """Add ``recipe``; a second recipe with the same name is an error naming both sources."""
        if not isinstance(recipe, Recipe):
            raise RegistryError(f"{source} registered {recipe!r}, which is not a kerasapps Recipe")
        previous = self._sources.get(recipe.name)
        if previous is not None and self._recipes[recipe.name] is not recipe:
            raise RegistryError(f"two recipes are named '{recipe.name}': one from {previous}, one from {source}")
        self._recipes[recipe.name] = recipe
        self._sources[recipe.name] = source
        return recipe

    def _ensure_loaded(self) -> None:
        if self._want_entry_points and not self._entry_points_loaded:
            self._entry_points_loaded = True
            for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                self._load_entry_point(entry_point)

    def _load_entry_point(self, entry_point) -> None:
        dist = getattr(entry_point, "dist", None)
        source = f"{dist.name if dist else '?'} (entry point {entry_point.name} = {entry_point.value})"
        try:
            obj = entry_point.load()
            recipes = list(_recipes_from(obj))
        except Exception as exc:  # a broken plugin must not take the others down
            log.warning("skipping recipes from %s: %s: %s", source, type(exc).__name__, exc)
            return
        for recipe in recipes:
            self._claim(recipe, source)

    def _claim(self, recipe: Recipe, source: str) -> None:
        """Register an entry point's recipe; a name claimed twice is withdrawn (see the module docstring)."""
        name = recipe.name
        if name in self._conflicts:
            self._conflicts[name].append(source)
        elif name in self._recipes and self._recipes[name] is not recipe:
            self._conflicts[name] = [self._sources.pop(name), source]
            del self._recipes[name]
        else:
            self.register(recipe, source)
            return
        log.warning("two recipes are named '%s' (from %s); neither is used", name, " and ".join(self._conflicts[name]))

    def get(self, name: str) -> Recipe:
        self._ensure_loaded()
        if name in self._conflicts:
            raise RegistryError(f"two recipes are named '{name}': one from {self._conflicts[name][0]}, one from "
                                f"{self._conflicts[name][1]}; uninstall one of them")
        try:
            return self._recipes[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._recipes, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            known = ", ".join(sorted(self._recipes)) or "none"
            raise RecipeNotFound(f"unknown recipe '{name}'{hint} (registered: {known})") from None

    def source(self, name: str) -> str:
        self.get(name)
        return self._sources[name]

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._recipes)

    def __contains__(self, name: str) -> bool:
        self._ensure_loaded()
        return name in self._recipes


def _recipes_from(obj) -> Iterable[Recipe]:
    if isinstance(obj, types.ModuleType):
        if not hasattr(obj, "RECIPES"):
            raise RegistryError(f"module {obj.__name__} has no RECIPES attribute")
        obj = obj.RECIPES
    if callable(obj) and not isinstance(obj, Recipe):
        obj = obj()
    if isinstance(obj, Recipe):
        return [obj]
    items = list(obj)
    for item in items:
        if not isinstance(item, Recipe):
            raise RegistryError(f"entry point yielded {item!r}, which is not a kerasapps Recipe")
    return items


REGISTRY = Registry()


def register_recipe(recipe: Recipe, source: str = "python") -> Recipe:
    """Register a recipe in the default registry (for use from Python, e.g. a notebook)."""
    return REGISTRY.register(recipe, source)


def get_recipe(name: str) -> Recipe:
    return REGISTRY.get(name)


def recipe_names() -> list[str]:
    return REGISTRY.names()
