"""A module importing a dependency that is not installed, for the LASH_TOOLS loading tests."""

import lash_no_such_dependency_xyz  # type: ignore[import-not-found]  # noqa: F401
