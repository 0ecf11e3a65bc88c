"""Procedural faces for the embedded sample (PIL).

A clip's frames are cheap: the speaker's face (hair, head, eyes, nose, beard, glasses, shoulders) is drawn once
per clip as an RGBA layer at 2x and downsampled; each frame pastes it on the clip's background at a slightly
bobbing position and draws the mouth, opened by the speech envelope.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from pipeline.data.sample.identity import EYE_COLOUR, Speaker

SUPERSAMPLE = 2


def _shade(rgb: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(int(max(0, min(255, round(c * factor)))) for c in rgb)  # type: ignore[return-value]


@dataclass(frozen=True)
class FaceLayer:
    """A speaker's face drawn for one clip: RGBA image centred on the head, plus mouth geometry (pixels)."""

    image: Image.Image
    mouth_dy: float       # mouth centre below the head centre
    mouth_half_width: float
    lip_rgb: tuple[int, int, int]
    inner_rgb: tuple[int, int, int]


def draw_face(speaker: Speaker, frame_size: int, lighting: float = 1.0,
              shirt_rgb: tuple[int, int, int] = (90, 90, 90)) -> FaceLayer:
    """Draw ``speaker``'s face for a ``frame_size`` frame; the layer is 2.8·head height square, head centred
    (tall enough for the shoulders to leave the frame at the bottom). ``lighting`` and ``shirt_rgb`` are
    per-clip (not identity)."""
    s = SUPERSAMPLE
    h = speaker.head_height * frame_size * s          # head height, supersampled pixels
    w = h * speaker.head_aspect
    size = int(round(2.8 * h))
    c = size / 2.0
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    skin = _shade(speaker.skin_rgb, lighting)
    hair = _shade(speaker.hair_rgb, lighting)
    shirt = _shade(shirt_rgb, lighting)

    # shoulders and neck (below the head; partly inside the face crop)
    d.ellipse((c - 1.1 * w, c + 0.62 * h, c + 1.1 * w, c + 2.2 * h), fill=shirt)
    d.rectangle((c - 0.2 * w, c + 0.3 * h, c + 0.2 * w, c + 0.75 * h), fill=_shade(skin, 0.85))
    # long hair falls behind the head
    # Both frame the face with a wide band of hair on each side: at 64 px a narrow one is 1-2 px, too little for
    # a pixel loss to pay for, and the decoder then draws every woman with short hair.
    if speaker.hair_style == "long":
        d.rounded_rectangle((c - 0.78 * w, c - 0.58 * h, c + 0.78 * w, c + 0.80 * h), radius=int(0.3 * w),
                            fill=hair)
    elif speaker.hair_style == "bob":
        d.rounded_rectangle((c - 0.74 * w, c - 0.58 * h, c + 0.74 * w, c + 0.38 * h), radius=int(0.3 * w),
                            fill=hair)
    # ears, head
    for side in (-1, 1):
        ex = c + side * 0.5 * w
        d.ellipse((ex - 0.08 * w, c - 0.1 * h, ex + 0.08 * w, c + 0.12 * h), fill=_shade(skin, 0.9))
    d.ellipse((c - w / 2, c - h / 2, c + w / 2, c + h / 2), fill=skin)
    # hair on top of the head
    if speaker.hair_style in ("short", "side", "long", "bob"):
        d.chord((c - 0.52 * w, c - 0.56 * h, c + 0.52 * w, c + 0.05 * h), 180, 360, fill=hair)
        if speaker.hair_style == "side":
            d.polygon([(c - 0.5 * w, c - 0.25 * h), (c + 0.1 * w, c - 0.5 * h), (c + 0.5 * w, c - 0.1 * h),
                       (c + 0.5 * w, c - 0.3 * h)], fill=hair)
    elif speaker.hair_style == "crew":
        d.chord((c - 0.5 * w, c - 0.52 * h, c + 0.5 * w, c - 0.12 * h), 180, 360, fill=hair)
    else:  # bald: a fringe around the sides only
        for side in (-1, 1):
            d.ellipse((c + side * 0.47 * w - 0.07 * w, c - 0.25 * h, c + side * 0.47 * w + 0.07 * w, c + 0.02 * h),
                      fill=hair)
    if speaker.age_group == "senior":  # forehead lines
        for k in range(2):
            y = c - 0.2 * h + k * 0.05 * h
            d.arc((c - 0.25 * w, y - 0.04 * h, c + 0.25 * w, y + 0.04 * h), 200, 340,
                  fill=_shade(skin, 0.7), width=s)
    # eyes and brows
    eye_y = c - 0.04 * h
    eye_rx, eye_ry = 0.11 * w, 0.05 * h
    # Glasses are thick dark frames around tinted lenses: thin 1-px rims at 64 px are lost by every decoder.
    frame_width = max(1, int(0.08 * h))
    for side in (-1, 1):
        ex = c + side * 0.22 * w
        if speaker.glasses:
            d.ellipse((ex - 1.6 * eye_rx, eye_y - 2.4 * eye_ry, ex + 1.6 * eye_rx, eye_y + 2.4 * eye_ry),
                      fill=_shade(skin, 0.6))
        d.ellipse((ex - eye_rx, eye_y - eye_ry, ex + eye_rx, eye_y + eye_ry), fill=(245, 245, 245))
        ir = 0.048 * h
        d.ellipse((ex - ir, eye_y - ir, ex + ir, eye_y + ir), fill=EYE_COLOUR)
        d.ellipse((ex - ir / 2, eye_y - ir / 2, ex + ir / 2, eye_y + ir / 2), fill=(10, 10, 10))
        by = eye_y - 0.1 * h
        d.line((ex - 1.2 * eye_rx, by + side * 0.0, ex + 1.2 * eye_rx, by - 0.01 * h), fill=hair,
               width=max(1, int(speaker.brow_weight * h)))
        if speaker.glasses:
            d.ellipse((ex - 1.6 * eye_rx, eye_y - 2.4 * eye_ry, ex + 1.6 * eye_rx, eye_y + 2.4 * eye_ry),
                      outline=(15, 15, 15), width=frame_width)
    if speaker.glasses:
        d.line((c - 0.22 * w + 1.6 * eye_rx, eye_y, c + 0.22 * w - 1.6 * eye_rx, eye_y), fill=(15, 15, 15),
               width=frame_width)
    # nose
    nose_top, nose_bottom = c + 0.0 * h, c + speaker.nose_length * h
    d.polygon([(c, nose_top), (c - 0.07 * w, nose_bottom), (c + 0.07 * w, nose_bottom)], fill=_shade(skin, 0.78))
    mouth_dy = 0.30 * h
    if speaker.beard:
        d.chord((c - 0.5 * w, c - 0.05 * h, c + 0.5 * w, c + 0.5 * h), 0, 180, fill=hair)
        d.ellipse((c - 0.3 * w, c + mouth_dy - 0.07 * h, c + 0.3 * w, c + mouth_dy + 0.07 * h), fill=skin)
    small = img.resize((size // s, size // s), Image.Resampling.LANCZOS)
    return FaceLayer(
        image=small,
        mouth_dy=mouth_dy / s,
        mouth_half_width=speaker.mouth_width * w / s / 2,
        lip_rgb=_shade(speaker.lip_rgb, lighting),
        inner_rgb=(60, 20, 25),
    )


def make_background(rng: np.random.Generator, frame_size: int) -> Image.Image:
    """A per-clip background: a random colour with a vertical gradient and a faint blotchy texture."""
    base = rng.uniform(40, 215, size=3)
    grad = np.linspace(-25, 25, frame_size)[:, None, None] * rng.choice([-1.0, 1.0])
    coarse = np.clip(128 + rng.normal(0, 12, size=(frame_size // 16 + 1, frame_size // 16 + 1, 3)), 0, 255)
    blotches = Image.fromarray(coarse.astype(np.uint8), "RGB").resize((frame_size, frame_size),
                                                                       Image.Resampling.BILINEAR)
    texture = np.asarray(blotches, dtype=np.float64) - 128
    pixels = np.clip(base[None, None, :] + grad + texture, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def render_frames(layer: FaceLayer, background: Image.Image, centre: tuple[float, float],
                  mouth_open: np.ndarray, bob: np.ndarray) -> np.ndarray:
    """Frames (``[T, H, W, 3]`` uint8): the face layer pasted with its head centred at ``centre`` (pixels)
    plus ``bob[t]`` (dx, dy pixels), the mouth opened by ``mouth_open[t]`` (0–1)."""
    size = layer.image.width
    frames = np.empty((len(mouth_open), background.height, background.width, 3), dtype=np.uint8)
    for t, (opening, (dx, dy)) in enumerate(zip(mouth_open, bob)):
        frame = background.copy()
        cx, cy = centre[0] + dx, centre[1] + dy
        frame.paste(layer.image, (int(round(cx - size / 2)), int(round(cy - size / 2))), layer.image)
        d = ImageDraw.Draw(frame)
        mx, my = cx, cy + layer.mouth_dy
        hw = layer.mouth_half_width
        hh = 0.8 + float(opening) * 0.35 * hw
        d.ellipse((mx - hw, my - hh, mx + hw, my + hh), fill=layer.lip_rgb)
        if hh > 1.6:
            d.ellipse((mx - 0.75 * hw, my - hh + 1, mx + 0.75 * hw, my + hh - 1), fill=layer.inner_rgb)
        frames[t] = np.asarray(frame)
    return frames


def drawing_workers() -> int:
    """Processes that draw the sample's clips or the corpus's faces: the machine's cores, at most 4 (the output does
    not depend on it). Here because both stages that draw already depend on this module."""
    return max(1, min(4, os.cpu_count() or 1))
