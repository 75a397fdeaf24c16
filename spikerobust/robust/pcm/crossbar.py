"""Crossbar arithmetic: weight → differential conductances, tiles, DAC/ADC quantisation.

A layer's weight matrix ``W [out, in]`` (a convolution's unrolled ``[out, in·kh·kw]``) is stored
on a differential pair of devices per weight, scaled by the layer's abs-max ``w_scale``::

    g⁺ = max(W, 0) / w_scale,   g⁻ = max(−W, 0) / w_scale,   W = w_scale · (g⁺ − g⁻)

so every target conductance is in [0, 1] (normalised to g_max). Optionally ``W`` is first clipped
to ``±clip_sigma·std(W)`` (then ``w_scale`` is the clip value when it bites).

The matrix-vector product runs on tiles of ``rows × cols`` devices (256 × 256 by default): the
input vector is cut into slices of ``cols`` entries, each tile produces a partial output for
``rows`` outputs, and partial outputs of the tiles in one row band are summed digitally. When a
converter is simulated, each tile scales its input slice by its abs-max (per input vector) into
[−1, 1], the DAC quantises it, the tile computes ``g_tile · x``, the ADC quantises that partial
output on ``[−adc_bound, adc_bound]`` and the slice scale is multiplied back.

A uniform symmetric ``b``-bit converter on ``[−B, B]`` has ``2^(b−1) − 1`` positive levels and a
least significant bit ``LSB = B / (2^(b−1) − 1)``; inside the range its error is at most LSB/2.

Examples:
    >>> import torch
    >>> quantize(torch.tensor([0.3, -0.3, 2.0]), 1.0, 2).tolist()    # levels -1, 0, 1; clipped
    [0.0, -0.0, 1.0]
    >>> x, g = torch.randn(3, 10), torch.randn(4, 10)
    >>> torch.allclose(crossbar_matmul(x, g, tile_size=(3, 4)), x @ g.T, atol=1e-6)
    True
"""

from __future__ import annotations

from typing import Iterator, List, Optional, Tuple, Union

import torch

__all__ = ["map_weights", "quantize", "lsb", "tile_slices", "tile_outputs", "crossbar_matmul", "tile_readout", "tile_shape"]

TileSize = Optional[Union[int, Tuple[int, int]]]


def map_weights(w: torch.Tensor, clip_sigma: Optional[float] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Differential target conductances ``(g⁺, g⁻)`` in [0, 1] and the scale ``w_scale``.

    Args:
        w: weight matrix ``[out, in]``.
        clip_sigma: clip ``w`` to ``±clip_sigma·std(w)`` before mapping (``None``: no clipping).

    Returns:
        ``(g_plus, g_minus, w_scale)``; ``w_scale`` is a 0-d tensor (1 for an all-zero matrix).

    Raises:
        ValueError: if ``w`` is not 2-D or ``clip_sigma`` is not positive.
    """
    if w.dim() != 2:
        raise ValueError(f"w must be a matrix [out, in], got shape {tuple(w.shape)}")
    w = w.detach()
    if clip_sigma is not None:
        if not float(clip_sigma) > 0:
            raise ValueError(f"clip_sigma must be > 0, got {clip_sigma}")
        c = float(clip_sigma) * w.std(unbiased=False)
        w = torch.maximum(torch.minimum(w, c), -c)
    w_scale = w.abs().max()
    if w_scale == 0:
        w_scale = torch.ones((), dtype=w.dtype, device=w.device)
    return w.clamp(min=0) / w_scale, (-w).clamp(min=0) / w_scale, w_scale


def lsb(bound: Union[float, torch.Tensor], bits: int) -> Union[float, torch.Tensor]:
    """Least significant bit of a symmetric ``bits``-bit converter on ``[−bound, bound]``."""
    return bound / (2 ** (int(bits) - 1) - 1)


def quantize(x: torch.Tensor, bound: Union[float, torch.Tensor], bits: int) -> torch.Tensor:
    """Uniform symmetric quantisation of ``x`` to ``bits`` bits on ``[−bound, bound]`` (clipped).

    Raises:
        ValueError: for fewer than 2 bits.
    """
    if int(bits) < 2:
        raise ValueError(f"bits must be >= 2, got {bits}")
    n = 2 ** (int(bits) - 1) - 1
    step = lsb(bound, bits)
    return torch.clamp(torch.round(x / step), -n, n) * step


def tile_shape(tile_size: TileSize, out_f: int, in_f: int) -> Tuple[int, int]:
    """``(rows, cols)`` of one crossbar tile for an ``[out_f, in_f]`` weight matrix (docs/pcm.md).

    ``tile_size`` ``None`` means one tile holding the whole matrix; an int means square tiles; a
    pair means ``(rows, cols)``.

    Raises:
        ValueError: for a tile size below 1.

    Examples:
        >>> tile_shape(None, 10, 3), tile_shape(4, 10, 3), tile_shape((2, 5), 10, 3)
        ((10, 3), (4, 4), (2, 5))
    """
    if tile_size is None:
        return max(out_f, 1), max(in_f, 1)
    rows, cols = (tile_size, tile_size) if isinstance(tile_size, int) else tuple(tile_size)
    if int(rows) < 1 or int(cols) < 1:
        raise ValueError(f"tile_size must be positive, got {tile_size}")
    return int(rows), int(cols)


def tile_slices(n: int, size: int) -> List[slice]:
    """Consecutive slices of at most ``size`` covering ``range(n)``."""
    return [slice(s, min(s + size, n)) for s in range(0, n, size)]


def tile_outputs(
    x: torch.Tensor,
    g: torch.Tensor,
    *,
    tile_size: TileSize = 256,
    dac_bits: Optional[int] = None,
    adc_bits: Optional[int] = None,
    adc_bound: float = 12.0,
) -> Iterator[Tuple[int, int, slice, torch.Tensor]]:
    """Yield ``(i, j, rows, y_ij)``: the partial output ``[N, len(rows)]`` of tile (row band i, column band j).

    Shape:
        x: ``[N, in]``; g: ``[out, in]`` (the differential conductance ``g⁺ − g⁻``).
    """
    if x.dim() != 2 or g.dim() != 2 or x.shape[1] != g.shape[1]:
        raise ValueError(f"expected x [N, in] and g [out, in] with equal in, got {tuple(x.shape)}, {tuple(g.shape)}")
    rows_n, cols_n = tile_shape(tile_size, g.shape[0], g.shape[1])
    convert = dac_bits is not None or adc_bits is not None
    for j, cols in enumerate(tile_slices(g.shape[1], cols_n)):
        xs = x[:, cols]
        if convert:
            scale = xs.abs().amax(dim=1, keepdim=True)
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))
            xs = xs / scale
            if dac_bits is not None:
                xs = quantize(xs, 1.0, dac_bits)
        for i, rows in enumerate(tile_slices(g.shape[0], rows_n)):
            y = xs @ g[rows, cols].T
            if convert:
                if adc_bits is not None:
                    y = quantize(y, float(adc_bound), adc_bits)
                y = y * scale
            yield i, j, rows, y


def crossbar_matmul(x: torch.Tensor, g: torch.Tensor, *, tile_gain: Optional[torch.Tensor] = None,
                    **tiling) -> torch.Tensor:
    """``x · gᵀ`` computed tile by tile, with optional converters and per-tile output gains.

    Args:
        x: inputs ``[N, in]``.
        g: differential conductances ``[out, in]``.
        tile_gain: ``[n_row_tiles, n_col_tiles]`` factors applied to each partial output
            (per-tile drift compensation); ``None``: 1.
        tiling: ``tile_size``, ``dac_bits``, ``adc_bits``, ``adc_bound`` as for :func:`tile_outputs`
            (default: 256 × 256 tiles, ideal converters).

    Returns:
        ``[N, out]``.
    """
    y = x.new_zeros(x.shape[0], g.shape[0])
    for i, j, rows, part in tile_outputs(x, g, **tiling):
        y[:, rows] += part if tile_gain is None else part * tile_gain[i, j]
    return y


def tile_readout(x: torch.Tensor, g: torch.Tensor, **tiling) -> torch.Tensor:
    """``Σ|y_ij|`` of every tile for the calibration input ``x``: ``[n_row_tiles, n_col_tiles]``.

    ``tiling``: the tile and converter settings of :func:`tile_outputs`.
    """
    sums = {(i, j): part.abs().sum() for i, j, _, part in tile_outputs(x, g, **tiling)}
    out = x.new_zeros(*(1 + max((ij[d] for ij in sums), default=-1) for d in (0, 1)))
    for (i, j), total in sums.items():
        out[i, j] = total
    return out
