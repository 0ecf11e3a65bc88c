"""Synthetic speaker identities: the face attributes and the voice parameters derived from them.

The voice is a function of the face (DESIGN.md §4), so that a model can learn the speech → face mapping and a
person can hear the link:

- gender → f0 range (male ~95–135 Hz, female ~185–245 Hz before intonation; the two never overlap) and a
  formant scale (female vocal tracts are shorter → formants ~17 % higher);
- head size → formant scale and f0 within the gender range (bigger head → lower formants, lower pitch);
- skin tone → spectral tilt (lighter skin → brighter voice);
- age group → breathiness and jitter (seniors breathier and shakier).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GENDERS = ("M", "F")
AGE_GROUPS = ("young", "adult", "senior")

# RGB palettes; indices are part of the identity. Skin tones run dark → light (the index drives brightness).
SKIN_TONES = ((96, 62, 42), (141, 85, 36), (176, 121, 80), (198, 134, 66), (224, 172, 130), (241, 204, 176))
HAIR_COLOURS = ((25, 20, 18), (90, 56, 30), (160, 110, 50), (220, 190, 110), (165, 60, 25), (40, 40, 70))
GREY_HAIR = (200, 200, 200)
EYE_COLOURS = ((70, 40, 20), (40, 110, 200), (50, 140, 70), (110, 110, 120))
SHIRT_COLOURS = ((200, 40, 40), (40, 160, 60), (40, 70, 200), (230, 200, 40), (150, 50, 170),
                 (30, 160, 170), (240, 130, 30), (90, 90, 90))
LIP_COLOURS = ((150, 60, 60), (190, 70, 90), (120, 50, 45))
HAIR_STYLES_M = ("short", "crew", "bald", "side")
HAIR_STYLES_F = ("long", "bob", "bun", "long")

# Reference head height (fraction of the frame height) at which the formant scale is 1.0.
REFERENCE_HEAD = 0.40


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: face attributes (drawing) and the voice parameters derived from them."""

    index: int
    speaker_id: str
    gender: str
    age_group: str
    head_height: float      # fraction of the frame height (0.36–0.44)
    head_aspect: float      # width / height (0.70–0.88)
    skin: int               # index into SKIN_TONES
    hair_colour: int        # index into HAIR_COLOURS (seniors are drawn grey)
    hair_style: str
    eye_colour: int
    shirt: int
    lips: int
    beard: bool
    glasses: bool
    nose_length: float      # fraction of the head height
    mouth_width: float      # fraction of the head width
    brow_weight: float      # eyebrow thickness, fraction of the head height
    # voice
    f0: float               # median fundamental frequency, Hz
    formant_scale: float    # multiplies every formant frequency
    tilt: float             # one-pole glottal low-pass coefficient (higher = darker voice)
    breathiness: float      # noise-to-voice ratio
    jitter: float           # relative random f0 perturbation per pulse

    @property
    def skin_rgb(self) -> tuple[int, int, int]:
        return SKIN_TONES[self.skin]

    @property
    def hair_rgb(self) -> tuple[int, int, int]:
        return GREY_HAIR if self.age_group == "senior" else HAIR_COLOURS[self.hair_colour]


def make_speaker(seed: int, index: int) -> Speaker:
    """Draw speaker ``index`` from ``seed``; each speaker has its own RNG stream, so adding speakers never
    changes the existing ones. Genders alternate (M, F, M, ...) so every sample is balanced."""
    rng = np.random.default_rng([seed, index, 0x5EED])
    gender = GENDERS[index % 2]
    age_group = AGE_GROUPS[int(rng.integers(len(AGE_GROUPS)))]
    head_height = float(rng.uniform(0.36, 0.44))
    male = gender == "M"
    head_aspect = float(rng.uniform(0.76, 0.88) if male else rng.uniform(0.70, 0.80))
    skin = int(rng.integers(len(SKIN_TONES)))
    styles = HAIR_STYLES_M if male else HAIR_STYLES_F
    # size01: 0 for the smallest head, 1 for the biggest; the voice deepens with it.
    size01 = (head_height - 0.36) / 0.08
    f0_lo, f0_hi = (95.0, 135.0) if male else (185.0, 245.0)
    f0 = f0_hi - size01 * (f0_hi - f0_lo) + float(rng.uniform(-4.0, 4.0))
    formant_scale = (1.0 if male else 1.17) * (REFERENCE_HEAD / head_height) ** 1.5
    tilt = 0.80 + 0.03 * (len(SKIN_TONES) - 1 - skin)  # 0.80 (light) … 0.95 (dark)
    breathiness = {"young": 0.02, "adult": 0.06, "senior": 0.18}[age_group]
    jitter = {"young": 0.004, "adult": 0.008, "senior": 0.02}[age_group]
    return Speaker(
        index=index,
        speaker_id=f"spk{index:03d}",
        gender=gender,
        age_group=age_group,
        head_height=head_height,
        head_aspect=head_aspect,
        skin=skin,
        hair_colour=int(rng.integers(len(HAIR_COLOURS))),
        hair_style=styles[int(rng.integers(len(styles)))],
        eye_colour=int(rng.integers(len(EYE_COLOURS))),
        shirt=int(rng.integers(len(SHIRT_COLOURS))),
        lips=int(rng.integers(len(LIP_COLOURS))),
        beard=bool(male and rng.random() < 0.45),
        glasses=bool(rng.random() < 0.3),
        nose_length=float(rng.uniform(0.14, 0.24)),
        mouth_width=float(rng.uniform(0.30, 0.48)),
        brow_weight=float(rng.uniform(0.03, 0.05) if male else rng.uniform(0.015, 0.03)),
        f0=f0,
        formant_scale=formant_scale,
        tilt=tilt,
        breathiness=breathiness,
        jitter=jitter,
    )
