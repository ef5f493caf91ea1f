"""A module whose import fails, for the LASH_TOOLS loading tests."""

raise RuntimeError("module exploded on import")
