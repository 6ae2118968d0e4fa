"""NODEDROP_PLUGINS: one loader for every process that validates or runs workflows."""

from __future__ import annotations

import pytest

from nodedrop.runtime.plugins import build_registry, plugin_modules

PLUGIN = "tests.worker.nd_test_nodes"


def test_the_variable_names_comma_separated_modules() -> None:
    assert plugin_modules({"NODEDROP_PLUGINS": f" {PLUGIN}, ,other.mod,"}) == (
        PLUGIN,
        "other.mod",
    )
    assert plugin_modules({}) == ()


def test_a_plugin_adds_its_node_types_to_a_copy_of_the_defaults() -> None:
    registry = build_registry((PLUGIN,))
    assert "test_sleep" in registry and "set" in registry
    assert "test_sleep" not in build_registry()


def test_a_bad_plugin_stops_the_load_with_its_name() -> None:
    with pytest.raises(ImportError, match="no register"):
        build_registry(("tests.runtime.test_plugins",))
    with pytest.raises(ImportError):
        build_registry(("no_such_plugin_module",))
