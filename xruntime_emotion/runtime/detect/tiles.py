"""Where BlazeFace looks: its anchors, the squares (whole photo and tiles) searched, and each square's view."""

from __future__ import annotations

import math

import numpy as np

_INPUT = 128  # the model's square input, pixels
# Tiles as fractions of the photo's longer side, besides the whole photo: the short-range model wants
# faces of about a fifth of its input or more. On 100 scenes (seed 1) the whole photo alone found 44% of
# the faces, adding tiles of 1/2 found 82%, adding tiles of 3/8 too 88% (before the FER framing below).
_TILES = (0.5, 0.375)
_OVERLAP = 0.5  # tiles step by half their side


_XS = np.array([0, 4, 6, 8, 10, 12, 14])  # the x columns of the regression that are anchor-relative


def _anchors() -> np.ndarray:
    """BlazeFace short-range anchor centres (896,2) in [0,1]: 2 per cell at stride 8, 6 at stride 16."""
    out = []
    for stride, per_cell in ((8, 2), (16, 6)):
        n = _INPUT // stride
        yy, xx = np.mgrid[0:n, 0:n]
        centres = np.stack([(xx + 0.5) / n, (yy + 0.5) / n], -1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, per_cell, 1).reshape(-1, 2))
    return np.concatenate(out)


def _starts(length: int, tile: int) -> list[int]:
    """Tile origins along one side: evenly spread, overlapping by ``_OVERLAP``, the last flush with the end."""
    if length <= tile:
        return [0]
    n = math.ceil((length - tile) / (tile * (1 - _OVERLAP))) + 1
    return [round(v) for v in np.linspace(0, length - tile, n)]


def regions(height: int, width: int) -> list[tuple[int, int, int]]:
    """The squares (x, y, side) searched in a photo: the whole of it, then the tiles.

    Tiles are fractions of the longer side, so their number does not grow with the aspect ratio: a square
    photo has the most, 35 (42 for a few sides, by rounding), and no photo has more.
    """
    side = max(height, width)
    out = [(0, 0, side)]
    for f in _TILES:
        t = max(1, round(side * f))
        out += [(x, y, t) for y in _starts(height, t) for x in _starts(width, t)]
    return out


def _view(rgb: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """The square (x0, y0, side) of a uint8 RGB photo, black beyond the photo, resized to the model's input.

    The square itself is never made: one past the photo's edge (the whole photo; a tile of a narrow photo)
    would be the photo's longer side squared, 1.2 GB for a 1x20000 strip. Its part inside the photo is padded
    only as far as the bilinear filter reaches from it, which gives the very pixels of the padded square; where
    that margin would outweigh the photo (a strip), the part is resized on its own and placed on black.
    """
    from PIL import Image

    bilinear = Image.Resampling.BILINEAR
    part = rgb[y0 : y0 + side, x0 : x0 + side]
    ph, pw = part.shape[:2]
    if ph == pw == side:
        return np.asarray(Image.fromarray(np.ascontiguousarray(part)).resize((_INPUT, _INPUT), bilinear))
    scale = side / _INPUT  # input pixels per output pixel (exact: a power-of-two division)
    reach = max(scale, 1.0)  # the filter's half-width in input pixels
    # output rows (columns) past these see only black; the input rows (columns) their filter reads
    oh, ow = (min(_INPUT, math.ceil((n + 2 * reach) / scale) + 1) for n in (ph, pw))
    eh, ew = (min(side, math.ceil((o + 0.5) * scale + reach) + 1) for o in (oh, ow))
    out = np.zeros((_INPUT, _INPUT, 3), np.uint8)
    if eh * ew <= 2 * ph * pw + _INPUT * _INPUT:
        canvas = np.zeros((eh, ew, 3), np.uint8)
        canvas[:ph, :pw] = part
        across = Image.fromarray(canvas).resize((ow, eh), bilinear, box=(0, 0, ow * scale, eh))
        out[:oh, :ow] = across.resize((ow, oh), bilinear, box=(0, 0, ow, oh * scale))  # rows second, as for a square
    else:
        sh, sw = (max(1, min(_INPUT, round(n / scale))) for n in (ph, pw))
        # reduced by whole factors first: Pillow's filter weights alone take 8 bytes x 2 x scale x 128
        out[:sh, :sw] = Image.fromarray(np.ascontiguousarray(part)).resize((sw, sh), bilinear, reducing_gap=2.0)
    return out
