"""tabular: the learning-curve table format, its writer, validator and read API.

    from lcsim.tabular import LookupTable
    t = LookupTable.open("default")          # or a table directory
    t.acc[t.row(17)], t.seconds(17, 10), t.goal(0.5)

Writers: `TableWriter(dir, build_meta(...)).write(ConfigResult(...))`; resume with
`held_ids(dir)`. Synthetic tables for tests: `tabular.testing.make_table`. Other tools:
`Blackbox(t)(config, epoch)` and `export_syne_tune(t, dir)` (`tabular.blackbox`).
Names are imported on first use, so `lcsim --help` (which imports tabular.cli) stays light.
"""

from __future__ import annotations

import importlib

__all__ = [
    "SCHEMA_VERSION",
    "TableError",
    "build_meta",
    "LookupTable",
    "resolve_table",
    "shipped_tables",
    "ConfigResult",
    "TableWriter",
    "held_ids",
    "Blackbox",
    "export_syne_tune",
]

_HOME = {
    "SCHEMA_VERSION": "schema", "TableError": "schema", "build_meta": "schema",
    "LookupTable": "table", "resolve_table": "table", "shipped_tables": "table",
    "ConfigResult": "writer", "TableWriter": "writer", "held_ids": "writer",
    "Blackbox": "blackbox", "export_syne_tune": "blackbox",
}


def __getattr__(name: str):
    if name in _HOME:
        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module 'tabular' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
