"""Judge a generated portrait with what the drawing code knows: where the face is, are glasses on it.

Generated images have no masks, so the parts are found by their drawn colours: the face is the
skin-coloured region, the eyes' row lies in its upper half, and glasses are near-black frames
there, far more dark pixels than the two small eyes. Thresholds come from drawn portraits
(`calibrate` in toy_model/study.py prints them) and are stated where they are used.
Images are H x W x 3 (or N x H x W x 3) floats in [0, 1], as ComfyUI's IMAGE.
"""

from dataclasses import dataclass

import numpy as np

from .portraits import SKIN

SKIN_DISTANCE = 0.16       # RGB distance to the skin colour that still counts as face
DARK = 0.3                 # near-black: every channel below it (eyes 0.12, glasses 0.02; not the blue hat)


@dataclass(frozen=True)
class Face:
    top: int
    bottom: int
    left: int
    right: int

    @property
    def centre_row(self) -> int:
        return (self.top + self.bottom) // 2


def skin_mask(image: np.ndarray) -> np.ndarray:
    return np.linalg.norm(image - np.asarray(SKIN, np.float32), axis=-1) < SKIN_DISTANCE


def find_face(image: np.ndarray) -> Face | None:
    """The skin region's extent (rows and columns holding at least 3 skin pixels), or None."""
    skin = skin_mask(image)
    rows = np.flatnonzero(skin.sum(axis=1) >= 3)
    columns = np.flatnonzero(skin.sum(axis=0) >= 3)
    if len(rows) < 6 or len(columns) < 6:
        return None
    return Face(int(rows[0]), int(rows[-1]), int(columns[0]), int(columns[-1]))


def glasses_region(face: Face, shape: tuple[int, int]) -> np.ndarray:
    """Where glasses sit: the face's columns (and a little beyond), from its top to its centre row."""
    region = np.zeros(shape, bool)
    region[max(face.top - 2, 0): face.centre_row + 1, max(face.left - 2, 0): face.right + 3] = True
    return region


def dark_pixels_in_glasses_region(image: np.ndarray) -> int:
    """How many near-black pixels lie where glasses would be (0 when no face is found)."""
    face = find_face(image)
    if face is None:
        return 0
    dark = image.max(axis=-1) < DARK
    return int((dark & glasses_region(face, image.shape[:2])).sum())


def face_overlap(image: np.ndarray, reference: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """Intersection over union of the two images' skin regions, outside `ignore` (H x W bool, e.g.
    where the removed object was): 1 = the face kept its place and shape."""
    keep = ~ignore if ignore is not None else np.ones(image.shape[:2], bool)
    skin, reference_skin = skin_mask(image) & keep, skin_mask(reference) & keep
    union = (skin | reference_skin).sum()
    return float((skin & reference_skin).sum() / union) if union else 0.0


def change_outside(image: np.ndarray, reference: np.ndarray, region: np.ndarray) -> float:
    """Mean absolute pixel change outside `region` (a boolean H x W mask)."""
    outside = ~region
    return float(np.abs(image - reference)[outside].mean()) if outside.any() else 0.0


def colour_pixels(image: np.ndarray, colour: tuple[float, float, float], distance: float = 0.15) -> np.ndarray:
    """Where the image has (about) one of the drawing's colours."""
    return np.linalg.norm(image - np.asarray(colour, np.float32), axis=-1) < distance
