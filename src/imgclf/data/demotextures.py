"""The demo's pictures: a garment cut from a textured cloth (dotted, striped or leopard print), drawn offline.

A random texture of the class (colours from a random scheme, scale, jitter) is viewed through a
rotated, zoomed, perspective-tilted window, shaded with light and folds, cut out by a garment
silhouette over a varied backdrop, sometimes partly covered, then put through a cheap camera
(exposure, white balance, blur, resolution, noise). Every choice comes from the ``rng`` given, so
the same generator state draws the same picture. :mod:`imgclf.data.demo` writes them as a dataset.
"""
from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Colour = np.ndarray  # (3,) float RGB in [0, 1]

# Garment silhouettes in unit coordinates (x right, y down, about 1 tall, centred on 0).
_TSHIRT = [(-0.12, -0.5), (-0.3, -0.47), (-0.52, -0.28), (-0.42, -0.14), (-0.3, -0.22), (-0.3, 0.5),
           (0.3, 0.5), (0.3, -0.22), (0.42, -0.14), (0.52, -0.28), (0.3, -0.47), (0.12, -0.5), (0, -0.42)]
_SHIRT = [(-0.1, -0.5), (-0.3, -0.46), (-0.45, -0.3), (-0.56, 0.38), (-0.44, 0.4), (-0.34, -0.1),
          (-0.32, 0.5), (0.32, 0.5), (0.34, -0.1), (0.44, 0.4), (0.56, 0.38), (0.45, -0.3), (0.3, -0.46),
          (0.1, -0.5), (0, -0.4)]
_DRESS = [(-0.1, -0.5), (-0.2, -0.5), (-0.2, -0.3), (-0.16, -0.05), (-0.42, 0.5), (0.42, 0.5),
          (0.16, -0.05), (0.2, -0.3), (0.2, -0.5), (0.1, -0.5), (0, -0.42)]
_TROUSERS = [(-0.25, -0.5), (0.25, -0.5), (0.31, 0.5), (0.07, 0.5), (0, -0.12), (-0.07, 0.5), (-0.31, 0.5)]
_SKIRT = [(-0.2, -0.32), (0.2, -0.32), (0.4, 0.32), (-0.4, 0.32)]
_SWATCH = [(-0.45, -0.4), (0.45, -0.4), (0.45, 0.4), (-0.45, 0.4)]
_GARMENTS = (_TSHIRT, _SHIRT, _DRESS, _TROUSERS, _SKIRT, _SWATCH)


def picture(class_index: int, rng: np.random.Generator, size: int) -> Image.Image:
    """One (size, size) RGB picture of class ``class_index`` (0 dotted, 1 striped, 2 leopard: the order of
    ``demo.DEMO_CLASSES``), every choice drawn from ``rng``."""
    canvas = 2 * size  # room for the warp to zoom, rotate and tilt without showing an edge
    pattern = (_dotted, _striped, _leopard)[class_index](rng, canvas)
    pattern = pattern.filter(ImageFilter.BoxBlur(0.5))  # PIL draws hard edges; cloth has none
    fg = _warp(pattern, rng, size)
    fg *= _shading(rng, size, strength=rng.uniform(0.05, 0.35))[..., None]
    mask = _garment_mask(rng, size)
    img = _background(rng, size) * (1 - mask[..., None]) + fg * mask[..., None]
    img = _occlude(img, rng)
    return _camera(img, rng)


def _hsv(h: float, s: float, v: float) -> Colour:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v))


def _palette(rng: np.random.Generator, n: int) -> list[Colour]:
    """``n`` colours from a random scheme; the first two always differ visibly."""
    scheme = rng.random()
    h0 = rng.random()
    if scheme < 0.2:  # low contrast: tones of one colour, the hard cases
        base = _hsv(h0, rng.uniform(0, 0.8), rng.uniform(0.3, 0.85))
        make = lambda: np.clip(base * rng.uniform(0.7, 1.3) + rng.normal(0, 0.03, 3), 0, 1)  # noqa: E731
    elif scheme < 0.35:  # earth tones, so tan and brown do not mean "leopard"
        make = lambda: _hsv(rng.uniform(0.04, 0.13), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.95))  # noqa: E731
    elif scheme < 0.5:  # one hue, several values
        make = lambda: _hsv(h0 + rng.normal(0, 0.02), rng.uniform(0.2, 1), rng.uniform(0.1, 1))  # noqa: E731
    else:
        make = lambda: _hsv(rng.random(), rng.uniform(0, 1) ** 0.7, rng.uniform(0.1, 1))  # noqa: E731
    colours = [make()]
    while len(colours) < n:
        c = make()
        for _ in range(20):  # an invisible pattern would be a mislabelled image
            if np.linalg.norm(c - colours[-1]) >= 0.12:
                break
            c = make()
        colours.append(c)
    return colours


def _rgb8(c: Colour) -> tuple[int, int, int]:
    r, g, b = (int(round(255 * float(v))) for v in np.clip(c, 0, 1))
    return r, g, b


def _blobs(cx: np.ndarray, cy: np.ndarray, r: np.ndarray, rng: np.random.Generator, n: int = 9,
           rough: float = 0.25, aspect: float = 0.0) -> np.ndarray:
    """Irregular polygons round each centre, about ``r`` in radius, up to ``aspect`` elongated: (N, n, 2)."""
    m = len(cx)
    t = np.sort(rng.uniform(0, 2 * np.pi, (m, n)), axis=1)
    rad = r[:, None] * (1 + rough * rng.uniform(-1, 1, (m, n)))
    stretch = np.exp(rng.uniform(-aspect, aspect, (m, 1)))
    return _place(rad * np.cos(t) * stretch, rad * np.sin(t) / stretch, cx, cy, rng.uniform(0, np.pi, m))


def _place(x: np.ndarray, y: np.ndarray, cx: np.ndarray, cy: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate local shapes (N, k) by ``angle`` (N,) and move them to their centres: (N, k, 2)."""
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    return np.stack([cx[:, None] + x * c - y * s, cy[:, None] + x * s + y * c], axis=-1)


def _fill_polygons(draw: ImageDraw.ImageDraw, polys: np.ndarray, fill: tuple[int, int, int]) -> None:
    for flat in polys.reshape(len(polys), -1).tolist():
        draw.polygon(flat, fill=fill)


def _dotted(rng: np.random.Generator, n: int) -> Image.Image:
    """Polka dots: a square or hex grid, sometimes jittered or scattered, one or two dot colours."""
    cols = _palette(rng, 3)
    img = Image.new("RGB", (n, n), _rgb8(cols[0]))
    draw = ImageDraw.Draw(img)
    sx = n * math.exp(rng.uniform(math.log(0.022), math.log(0.09)))
    sy = sx * (1.0 if rng.random() < 0.5 else rng.uniform(0.8, 1.25))
    radius = min(sx, sy) * rng.uniform(0.13, 0.4)
    jitter = 0.0 if rng.random() < 0.55 else rng.uniform(0.05, 0.35)
    size_var = 0.0 if rng.random() < 0.65 else rng.uniform(0.1, 0.4)
    drop = 0.0 if rng.random() < 0.8 else rng.uniform(0.05, 0.3)
    two = rng.random() < 0.2
    gy, gx = np.mgrid[0: int(n / sy) + 2, 0: int(n / sx) + 2].astype(float)
    if rng.random() < 0.5:  # hex packing
        gx += 0.5 * (gy % 2)
    xs, ys = gx.ravel() * sx, gy.ravel() * sy
    if rng.random() < 0.12:  # scattered confetti rather than a grid
        xs, ys = rng.uniform(0, n, xs.size), rng.uniform(0, n, xs.size)
    xs += rng.normal(0, jitter * sx, xs.size)
    ys += rng.normal(0, jitter * sy, ys.size)
    rs = radius * (1 + size_var * rng.uniform(-1, 1, xs.size))
    keep = rng.random(xs.size) >= drop
    fills = [_rgb8(cols[1]), _rgb8(cols[2])]
    for k, (x, y, r) in enumerate(zip(xs[keep].tolist(), ys[keep].tolist(), rs[keep].tolist())):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fills[k % 2 if two else 0])
    return img


def _striped(rng: np.random.Generator, n: int) -> Image.Image:
    """Stripes: a repeating run of 2-5 bands of varied width and colour, straight or wavy."""
    ncol = int(rng.integers(2, 5))
    cols = _palette(rng, ncol)
    nband = int(rng.integers(2, 6))
    band_col = [i % ncol for i in range(nband)] if rng.random() < 0.6 else [0, *rng.integers(1, ncol, nband - 1)]
    widths = rng.uniform(0.15, 1.0, nband)
    period = n * math.exp(rng.uniform(math.log(0.03), math.log(0.22)))
    edges = np.cumsum(widths / widths.sum() * period)
    theta = rng.uniform(0, np.pi)
    y, x = np.mgrid[0:n, 0:n].astype(np.float32)
    u = x * math.cos(theta) + y * math.sin(theta)
    if rng.random() < 0.2:  # wavy, as stripes on a knit
        v = -x * math.sin(theta) + y * math.cos(theta)
        u += period * rng.uniform(0.05, 0.3) * np.sin(v * 2 * np.pi / (period * rng.uniform(2, 8)))
    band = np.searchsorted(edges, np.mod(u, period), side="right").clip(0, nband - 1)
    img = Image.fromarray(np.asarray(band_col, np.uint8)[band], "P")
    img.putpalette([v for c in cols for v in _rgb8(c)])
    return img.convert("RGB")


def _leopard(rng: np.random.Generator, n: int) -> Image.Image:
    """Leopard print: rosettes (a ring of 3-6 ragged blobs round a darker centre) and solid spots."""
    if rng.random() < 0.45:  # the natural tan/brown/black coat
        base = _hsv(rng.uniform(0.06, 0.11), rng.uniform(0.35, 0.75), rng.uniform(0.6, 0.95))
        ring = _hsv(rng.uniform(0.04, 0.1), rng.uniform(0.3, 0.8), rng.uniform(0.04, 0.25))
    else:
        base, ring = _palette(rng, 2)
    inner = base + (ring - base) * rng.uniform(0.1, 0.45)
    img = Image.new("RGB", (n, n), _rgb8(base))
    draw = ImageDraw.Draw(img)
    s = n * math.exp(rng.uniform(math.log(0.04), math.log(0.13)))
    gy, gx = np.mgrid[-1: int(n / s) + 2, -1: int(n / s) + 2].astype(float)
    gx += 0.5 * (gy % 2)  # hex packing, then shaken well
    cx = gx.ravel() * s + rng.normal(0, 0.22 * s, gx.size)
    cy = gy.ravel() * s * 0.87 + rng.normal(0, 0.22 * s, gy.size)
    r = s * rng.uniform(0.28, 0.42, cx.size)
    _fill_polygons(draw, _blobs(cx, cy, r * 0.85, rng, rough=0.15, aspect=0.2), _rgb8(inner))
    _fill_polygons(draw, _rosette_rings(cx, cy, r, rng), _rgb8(ring))
    if rng.random() < 0.6:  # small solid spots between the rosettes
        m = int(gx.size * rng.uniform(0.3, 1.2))
        spots = _blobs(rng.uniform(0, n, m), rng.uniform(0, n, m), s * rng.uniform(0.04, 0.11, m), rng,
                       n=7, rough=0.3, aspect=0.4)
        _fill_polygons(draw, spots, _rgb8(ring))
    return img


def _rosette_rings(cx: np.ndarray, cy: np.ndarray, r: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The broken ring of each rosette: 3-6 thick, ragged arcs per centre, as (M, 12, 2) polygons."""
    k = rng.integers(3, 7, cx.size)
    owner = np.repeat(np.arange(cx.size), k)
    nth = np.arange(owner.size) - np.repeat(np.cumsum(k) - k, k)
    step = 2 * np.pi / k[owner]
    a0 = rng.uniform(0, 2 * np.pi, cx.size)[owner] + nth * step + rng.normal(0, 0.15, owner.size)
    a = a0[:, None] + np.linspace(0, 1, 6) * (step * rng.uniform(0.45, 0.85, owner.size))[:, None]
    taper = np.sin(np.linspace(0.3, np.pi - 0.3, 6))  # blunt ends, fat middle
    thick = r[owner, None] * rng.uniform(0.18, 0.4, (owner.size, 1))
    half = 0.5 * thick * taper * (1 + 0.4 * rng.uniform(-1, 1, (owner.size, 6)))
    rr = r[owner, None] + 0.1 * r[owner, None] * rng.uniform(-1, 1, (owner.size, 1))
    rad = np.concatenate([rr + half, (rr - half)[:, ::-1]], axis=1)
    ang = np.concatenate([a, a[:, ::-1]], axis=1)
    squash = np.exp(rng.uniform(-0.2, 0.2, cx.size))[owner, None]  # rosettes are rarely round
    return _place(rad * np.cos(ang) * squash, rad * np.sin(ang) / squash, cx[owner], cy[owner],
                  rng.uniform(0, np.pi, cx.size)[owner])


def _perspective_coeffs(dst: np.ndarray, src: np.ndarray) -> list[float]:
    """PIL PERSPECTIVE data mapping output points ``dst`` (4, 2) to input points ``src`` (4, 2)."""
    a = np.zeros((8, 8))
    for i, ((x, y), (u, v)) in enumerate(zip(dst, src)):
        a[2 * i] = [x, y, 1, 0, 0, 0, -u * x, -u * y]
        a[2 * i + 1] = [0, 0, 0, x, y, 1, -v * x, -v * y]
    return np.linalg.solve(a, src.reshape(8)).tolist()


def _warp(pattern: Image.Image, rng: np.random.Generator, size: int) -> np.ndarray:
    """View a rotated, zoomed, tilted square of the pattern: (size, size, 3) floats in [0, 1]."""
    n = pattern.size[0]
    side = size * rng.uniform(0.6, 1.1)
    angle = rng.uniform(0, 2 * np.pi)
    corners = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], float) * side / 2
    corners += rng.uniform(-0.12, 0.12, (4, 2)) * side  # the tilt of a photo not taken square-on
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    src = corners @ rot.T + n / 2 + rng.uniform(-0.05, 0.05, 2) * n
    dst = np.array([(0, 0), (size, 0), (size, size), (0, size)], float)
    fill = pattern.getpixel((n // 2, n // 2))
    out = pattern.transform((size, size), Image.Transform.PERSPECTIVE, _perspective_coeffs(dst, src),
                            Image.Resampling.BICUBIC, fillcolor=fill)
    return np.asarray(out, dtype=np.float32) / 255


def _smooth_field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a few random values smoothly upscaled."""
    small = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8), "L")
    return np.asarray(small.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32) / 255


def _shading(rng: np.random.Generator, size: int, strength: float) -> np.ndarray:
    """A light map, about 1: a slope of light plus soft folds in the cloth."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    g = rng.normal(0, 1, 2)
    light = g[0] * x + g[1] * y
    for _ in range(int(rng.integers(1, 4))):
        a, f, p = rng.uniform(0, np.pi), rng.uniform(0.5, 2.5), rng.uniform(0, 2 * np.pi)
        light += rng.uniform(0.3, 1) * np.sin(2 * np.pi * f * (x * math.cos(a) + y * math.sin(a)) + p)
    return 1 + strength * light / (np.abs(light).max() + 1e-6)


def _garment_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """Where the garment is: (size, size) floats in [0, 1] with soft edges."""
    if rng.random() < 0.22:  # a close-up: cloth fills the frame
        return np.ones((size, size), np.float32)
    shape = np.array(_GARMENTS[int(rng.integers(len(_GARMENTS)))], float)
    shape += rng.normal(0, 0.015, shape.shape)
    shape *= [rng.uniform(0.8, 1.25), 1.0]
    a = rng.uniform(-0.35, 0.35)
    shape = shape @ np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    shape = shape * size * rng.uniform(0.75, 1.1) + size / 2 + rng.uniform(-0.08, 0.08, 2) * size
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in shape.tolist()], fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(0.8))
    return np.asarray(mask, dtype=np.float32) / 255


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A plain, gradient, blotchy or patterned (checks, plaid, wood) backdrop: (size, size, 3)."""
    c1, c2 = (c * rng.uniform(0.5, 1.0) + rng.uniform(0, 0.3) for c in _palette(rng, 2))  # muted
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    kind = rng.random()
    if kind < 0.25:
        t = np.zeros((size, size), np.float32)
    elif kind < 0.45:
        a = rng.uniform(0, 2 * np.pi)
        t = x * math.cos(a) + y * math.sin(a)
        t = (t - t.min()) / (t.max() - t.min())
    elif kind < 0.7:
        t = _smooth_field(rng, size, int(rng.integers(3, 12)))
    elif kind < 0.82:  # checks or tiles
        cell = rng.uniform(0.05, 0.25)
        t = ((np.floor(x / cell) + np.floor(y / cell)) % 2) * rng.uniform(0.3, 1)
    elif kind < 0.92:  # plaid: two faint crossing sets of lines
        cell = rng.uniform(0.08, 0.3)
        t = 0.5 * ((np.mod(x, cell) < cell * 0.3).astype(np.float32) + (np.mod(y, cell) < cell * 0.3))
    else:  # wood grain: streaky noise
        t = _smooth_field(rng, size, 6) * 0.5 + 0.5 * np.sin(y * rng.uniform(20, 80) + 6 * _smooth_field(rng, size, 4))
        t = (t - t.min()) / (t.max() - t.min() + 1e-6)
    bg = c1 + (c2 - c1) * t[..., None]
    return bg * _shading(rng, size, strength=rng.uniform(0, 0.25))[..., None]


def _occlude(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sometimes a hand, tag, hanger or other object covers part of the garment."""
    if rng.random() >= 0.35:
        return img
    size = img.shape[0]
    pil = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(pil)
    for _ in range(int(rng.integers(1, 3))):
        col = _rgb8(_palette(rng, 1)[0])
        x, y = rng.uniform(0, size, 2)
        w, h = rng.uniform(0.08, 0.3, 2) * size
        kind = rng.random()
        if kind < 0.4:
            draw.rectangle((x, y, x + w, y + h), fill=col)
        elif kind < 0.8:
            _fill_polygons(draw, _blobs(np.array([x]), np.array([y]), np.array([(w + h) / 3]), rng, rough=0.35, aspect=0.5), col)
        else:  # a hanger's wire
            draw.line([(x - w, y + h / 2), (x, y), (x + w, y + h / 2)], fill=col, width=max(2, size // 80))
    return np.asarray(pil, dtype=np.float32) / 255


def _camera(img: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Exposure, contrast, white balance, focus, resolution and sensor noise of a cheap camera."""
    size = img.shape[0]
    mean = img.mean()
    img = (img - mean) * rng.uniform(0.7, 1.15) + mean
    img = img * rng.uniform(0.65, 1.3) * rng.uniform(0.92, 1.08, 3)
    pil = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
    if rng.random() < 0.15:  # a low-resolution photo, upscaled
        small = max(16, int(size * rng.uniform(0.3, 0.6)))
        pil = pil.resize((small, small), Image.Resampling.BILINEAR).resize((size, size), Image.Resampling.BILINEAR)
    if rng.random() < 0.6:
        pil = pil.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.6) * size / 256))
    sigma = rng.uniform(0, 12)
    out = np.asarray(pil, dtype=np.float32) + rng.normal(0, sigma, (size, size, 3)).astype(np.float32)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8), "RGB")
