"""Draw synthetic portraits whose every object is known: image, per-object masks, caption.

A portrait is a face (skin ellipse, two eyes, a mouth) over shoulders, on a plain background,
at a slightly varied place and size, with optional glasses, a mustache and a coloured hat.
Shapes are drawn from signed distances with a one-pixel soft edge, so the images have no
aliasing for the VAE to learn. Deterministic: the same `Portrait` always draws the same pixels,
and `random_portrait(numpy.random.Generator)` is reproducible from the generator's seed.
"""

from dataclasses import dataclass, field

import numpy as np

from .captions import HAT_COLOURS, caption_for

SIZE = 64

SKIN = (0.93, 0.76, 0.62)
EYE = (0.10, 0.10, 0.12)
MOUTH = (0.75, 0.25, 0.25)
GLASSES = (0.02, 0.02, 0.02)
MUSTACHE = (0.40, 0.24, 0.10)
BACKGROUNDS = ((0.78, 0.80, 0.82), (0.62, 0.78, 0.95), (0.70, 0.90, 0.70), (0.95, 0.90, 0.72))
SHIRTS = ((0.30, 0.35, 0.60), (0.55, 0.55, 0.55), (0.85, 0.85, 0.85), (0.45, 0.60, 0.45))
HAT_RGB = {"red": (0.85, 0.12, 0.12), "blue": (0.15, 0.25, 0.85),
           "green": (0.15, 0.65, 0.20), "yellow": (0.95, 0.85, 0.10)}


@dataclass(frozen=True)
class Portrait:
    """Everything that decides the picture. Positions are in pixels of the 64x64 image."""

    centre_x: float = 32.0
    centre_y: float = 33.0
    face_width: float = 12.0   # half-widths of the face ellipse
    face_height: float = 15.0
    background: int = 0
    shirt: int = 0
    glasses: bool = False
    mustache: bool = False
    hat: str | None = None     # a key of HAT_RGB, or None

    @property
    def caption(self) -> str:
        return caption_for(self.glasses, self.mustache, self.hat)


@dataclass
class Drawing:
    """The drawn image (H x W x 3, floats in [0, 1]) and each part's coverage mask (H x W, [0, 1])."""

    image: np.ndarray
    masks: dict[str, np.ndarray] = field(default_factory=dict)


def random_portrait(rng: np.random.Generator) -> Portrait:
    """A portrait with each object present with probability 1/2 and a uniform hat colour."""
    return Portrait(
        centre_x=float(rng.uniform(26, 38)), centre_y=float(rng.uniform(32, 36)),
        face_width=float(rng.uniform(12.0, 14.5)), face_height=float(rng.uniform(15.0, 17.5)),
        background=int(rng.integers(len(BACKGROUNDS))), shirt=int(rng.integers(len(SHIRTS))),
        glasses=bool(rng.random() < 0.5), mustache=bool(rng.random() < 0.5),
        hat=HAT_COLOURS[rng.integers(len(HAT_COLOURS))] if rng.random() < 0.5 else None,
    )


def _grid():
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5
    return x, y


def _coverage(signed_distance: np.ndarray) -> np.ndarray:
    """Soft inside-ness: 1 inside, 0 outside, linear across one pixel at the edge."""
    return np.clip(0.5 - signed_distance, 0.0, 1.0)


def _ellipse(x, y, cx, cy, rx, ry):
    # Approximate signed distance of an ellipse, in pixels (exact for a circle).
    radius = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    return (radius - 1.0) * min(rx, ry)


def _box(x, y, left, top, right, bottom):
    return np.maximum(np.maximum(left - x, x - right), np.maximum(top - y, y - bottom))


def parts_of(portrait: Portrait) -> dict[str, np.ndarray]:
    """Coverage of every part, in painting order (later parts cover earlier ones)."""
    x, y = _grid()
    p = portrait
    cx, cy, fw, fh = p.centre_x, p.centre_y, p.face_width, p.face_height
    eye_y, eye_dx = cy - 0.2 * fh, 0.42 * fw
    parts = {
        "shirt": _coverage(_ellipse(x, y, cx, cy + fh + 12, fw * 2.0, 14)),
        "face": _coverage(_ellipse(x, y, cx, cy, fw, fh)),
        "eyes": np.maximum(_coverage(_ellipse(x, y, cx - eye_dx, eye_y, 1.6, 1.6)),
                           _coverage(_ellipse(x, y, cx + eye_dx, eye_y, 1.6, 1.6))),
        "mouth": _coverage(_box(x, y, cx - 0.35 * fw, cy + 0.55 * fh - 0.8, cx + 0.35 * fw, cy + 0.55 * fh + 0.8)),
    }
    if p.mustache:
        parts["mustache"] = _coverage(_ellipse(x, y, cx, cy + 0.36 * fh, 0.45 * fw, 1.8))
    if p.glasses:
        ring = np.minimum(np.abs(_ellipse(x, y, cx - eye_dx, eye_y, 4.2, 3.6)),
                          np.abs(_ellipse(x, y, cx + eye_dx, eye_y, 4.2, 3.6))) - 0.8
        bridge = _box(x, y, cx - eye_dx + 4.0, eye_y - 1.6, cx + eye_dx - 4.0, eye_y - 0.4)
        parts["glasses"] = _coverage(np.minimum(ring, bridge))
    if p.hat is not None:
        crown = _box(x, y, cx - 0.8 * fw, cy - fh - 7, cx + 0.8 * fw, cy - 0.55 * fh)
        brim = _box(x, y, cx - 1.25 * fw, cy - 0.62 * fh - 1.2, cx + 1.25 * fw, cy - 0.55 * fh + 1.0)
        parts["hat"] = _coverage(np.minimum(crown, brim))
    return parts


def colour_of(portrait: Portrait, part: str) -> tuple[float, float, float]:
    return {"shirt": SHIRTS[portrait.shirt], "face": SKIN, "eyes": EYE, "mouth": MOUTH,
            "mustache": MUSTACHE, "glasses": GLASSES,
            "hat": HAT_RGB.get(portrait.hat or "red")}[part]


def draw(portrait: Portrait) -> Drawing:
    """Paint the parts over the background; each mask is the part's visible coverage."""
    image = np.empty((SIZE, SIZE, 3), np.float32)
    image[:] = BACKGROUNDS[portrait.background]
    parts = parts_of(portrait)
    visible = {}
    for name, coverage in parts.items():
        alpha = coverage[..., None]
        image = image * (1 - alpha) + alpha * np.asarray(colour_of(portrait, name), np.float32)
        for earlier, earlier_coverage in visible.items():
            visible[earlier] = earlier_coverage * (1 - coverage)
        visible[name] = coverage
    return Drawing(image=image, masks=visible)


def draw_batch(count: int, seed: int) -> tuple[np.ndarray, list[Portrait]]:
    """`count` random portraits from `seed`: images as N x 3 x 64 x 64 floats in [0, 1]."""
    rng = np.random.default_rng(seed)
    portraits = [random_portrait(rng) for _ in range(count)]
    images = np.stack([draw(p).image.transpose(2, 0, 1) for p in portraits])
    return images, portraits
