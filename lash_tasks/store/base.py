"""Transitional re-export; deleted with `SqlStore`."""

from lash_tasks.store.database import explain_database_error

__all__ = ["explain_database_error"]
