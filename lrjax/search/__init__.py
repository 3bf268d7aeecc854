"""lrjax.search: configuration spaces and search policies built on `lrjax.sweep`."""

from lrjax.search._grid import grid, log_grid

__all__ = ["grid", "log_grid"]
