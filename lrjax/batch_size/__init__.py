"""lrjax.batch_size: which batch size? The gradient noise scale and batch-size sweeps."""

from lrjax.batch_size._noise import NoiseScale, gradient_noise_scale
from lrjax.batch_size._trade_off import BatchSizeResult, batch_size_sweep, fit_critical_batch_size

__all__ = ["BatchSizeResult", "NoiseScale", "batch_size_sweep", "fit_critical_batch_size", "gradient_noise_scale"]
