"""lrjax.search: configuration spaces and search policies built on `lrjax.Population`.

Spaces (`log_uniform`, `uniform`, `int_uniform`, `choice`) and grids (`grid`, `log_grid`) give
configurations; `random` draws them for `lrjax.sweep`. The policies (`successive_halving`,
`hyperband`, `pbt`, `bayesian`) are host-side loops over one population: each trains its trials
as one compiled program and returns a `SearchResult`; besides their own arguments they all take
the `SearchOptions`.
"""

from lrjax.search._bayesian import bayesian
from lrjax.search._driver import SearchOptions
from lrjax.search._grid import grid, log_grid
from lrjax.search._halving import HalvingOptions, hyperband, successive_halving
from lrjax.search._pbt import pbt
from lrjax.search._result import SearchResult
from lrjax.search._space import choice, int_uniform, log_uniform, random, uniform

__all__ = [
    "HalvingOptions",
    "SearchOptions",
    "SearchResult",
    "bayesian",
    "choice",
    "grid",
    "hyperband",
    "int_uniform",
    "log_grid",
    "log_uniform",
    "pbt",
    "random",
    "successive_halving",
    "uniform",
]
