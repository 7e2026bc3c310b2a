"""Fonts and label fitting for the PIL drawings (no font files shipped with the pack)."""

from functools import lru_cache

from PIL import ImageDraw, ImageFont

Font = ImageFont.ImageFont | ImageFont.FreeTypeFont
RGB = tuple[int, int, int]


@lru_cache(maxsize=16)
def label_font(size: int) -> Font:
    """Pillow's built-in font at `size` pixels.

    Pillow >= 10.1 scales its default font; older versions only have a fixed small bitmap font,
    which still draws readable (if small) labels.
    """
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def text_width(text: str, font: Font) -> int:
    """Width in pixels of `text` drawn with `font`."""
    left, _, right, _ = font.getbbox(text)
    return right - left


def text_height(font: Font) -> int:
    """Height in pixels of one line of text in `font`, from the line's top to its descenders."""
    return font.getbbox("Ag")[3]


def fit_text(text: str, font: Font, max_width: int) -> str:
    """`text`, cut short with "..." if it would be wider than `max_width` pixels."""
    if text_width(text, font) <= max_width:
        return text
    while text and text_width(text + "...", font) > max_width:
        text = text[:-1]
    return text + "..." if text else ""


def draw_text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font: Font,
              fill: RGB, anchor: str = "lt") -> None:
    """Draw `text` placed by its ink box: `anchor` is "l"/"m"/"r" then "t"/"m"/"b" ("mm" centres it).

    Computed here rather than with PIL's own `anchor=`, which bitmap fonts refuse.
    """
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x_shift = {"l": left, "m": (left + right) / 2, "r": right}[anchor[0]]
    y_shift = {"t": top, "m": (top + bottom) / 2, "b": bottom}[anchor[1]]
    draw.text((xy[0] - x_shift, xy[1] - y_shift), text, font=font, fill=fill)
