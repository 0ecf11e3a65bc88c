"""Synthetic speaker identities: the face attributes and the voice parameters derived from them.

The voice is a function of the face (docs/design.md, The embedded sample), so that a model can learn the speech → face mapping and a
person can hear the link. Every per-speaker visual attribute has a voice counterpart:

- gender → f0 range (male ~95–135 Hz, female ~185–245 Hz before intonation; the two never overlap), a formant
  scale (female vocal tracts are shorter → formants ~17 % higher), head shape and hair styles;
- head size → formant scale and f0 within the gender range (bigger head → lower formants, lower pitch);
- skin tone → spectral tilt (lighter skin → brighter voice);
- age group → breathiness and jitter (seniors breathier and shakier), hair style, grey hair and forehead lines;
- hair colour → an extra narrow "timbre" resonance at a colour-specific frequency (4–7.2 kHz);
- glasses → speaking rate (glasses wearers speak in slower, longer syllables);
- beard (men) → a slow, deep vibrato (tremor).

Nothing else about the face varies per speaker (eyes, lips, nose, mouth and brows are fixed per gender); the
shirt colour, background and lighting vary per clip, so they are no identity cue that the voice cannot carry.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.data.attributes import AGE_GROUPS, GENDERS, SKIN_CLASSES

# RGB palettes. Skin tones run dark → light (the index drives brightness).
SKIN_TONES = ((96, 62, 42), (141, 85, 36), (176, 121, 80), (198, 134, 66), (224, 172, 130), (241, 204, 176))
assert len(SKIN_TONES) == len(SKIN_CLASSES), "one skin colour per attribute class"
# Hair colours far apart at 64 px (black, brown, blonde, red) plus grey for seniors; each has its own timbre
# resonance (Hz) in the voice, in the same order.
HAIR_COLOURS = ((20, 18, 16), (110, 62, 25), (235, 200, 90), (200, 60, 20))
GREY_HAIR = (205, 205, 205)
HAIR_RESONANCES = (4000.0, 4800.0, 5600.0, 6400.0)
GREY_RESONANCE = 7200.0
EYE_COLOUR = (60, 40, 25)
# Shirts vary per clip (not an identity cue).
SHIRT_COLOURS = ((200, 40, 40), (40, 160, 60), (40, 70, 200), (230, 200, 40), (150, 50, 170),
                 (30, 160, 170), (240, 130, 30), (90, 90, 90))
LIP_COLOURS = {"M": (150, 70, 65), "F": (190, 70, 90)}
# Hair style follows gender and age group (young, adult, senior), so it is carried by pitch and breathiness.
# Women's hair always frames the face (long or bob), men's never does: gender must be visible at 64 px.
HAIR_STYLES = {"M": ("side", "short", "bald"), "F": ("long", "bob", "bob")}

# Reference head height (fraction of the frame height) at which the formant scale is 1.0.
REFERENCE_HEAD = 0.40
# Speaking rate: syllable length range (s) for speakers without / with glasses.
SYLLABLE_LENGTH = {False: (0.12, 0.24), True: (0.28, 0.42)}
# Vibrato (rate Hz, relative depth) for speakers without / with a beard.
VIBRATO = {False: (5.5, 0.008), True: (2.5, 0.03)}


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: face attributes (drawing) and the voice parameters derived from them."""

    index: int
    speaker_id: str
    gender: str
    age_group: str
    head_height: float      # fraction of the frame height (0.36–0.44)
    head_aspect: float      # width / height; set by gender and head size
    skin: int               # index into SKIN_TONES
    hair_colour: int        # index into HAIR_COLOURS (seniors are drawn grey)
    hair_style: str
    beard: bool
    glasses: bool
    nose_length: float      # fraction of the head height (per gender)
    mouth_width: float      # fraction of the head width (per gender)
    brow_weight: float      # eyebrow thickness, fraction of the head height (per gender)
    # voice
    f0: float               # median fundamental frequency, Hz
    formant_scale: float    # multiplies every formant frequency
    tilt: float             # one-pole glottal low-pass coefficient (higher = darker voice)
    breathiness: float      # noise-to-voice ratio
    jitter: float           # relative random f0 perturbation per pulse
    timbre_hz: float        # centre of the extra hair-colour resonance
    syllable_min: float     # syllable length range, s (speaking rate)
    syllable_max: float
    vibrato_rate: float     # Hz
    vibrato_depth: float    # relative f0 excursion

    @property
    def skin_rgb(self) -> tuple[int, int, int]:
        return SKIN_TONES[self.skin]

    @property
    def hair_rgb(self) -> tuple[int, int, int]:
        return GREY_HAIR if self.age_group == "senior" else HAIR_COLOURS[self.hair_colour]

    @property
    def lip_rgb(self) -> tuple[int, int, int]:
        return LIP_COLOURS[self.gender]


def make_speaker(seed: int, index: int) -> Speaker:
    """Draw speaker ``index`` from ``seed``; each speaker has its own RNG stream, so adding speakers never
    changes the existing ones. Genders alternate (M, F, M, ...) so every sample is balanced."""
    rng = np.random.default_rng([seed, index, 0x5EED])
    gender = GENDERS[index % 2]
    male = gender == "M"
    age = int(rng.integers(len(AGE_GROUPS)))
    age_group = AGE_GROUPS[age]
    head_height = float(rng.uniform(0.36, 0.44))
    skin = int(rng.integers(len(SKIN_TONES)))
    hair_colour = int(rng.integers(len(HAIR_COLOURS)))
    glasses = bool(rng.random() < 0.4)
    beard = bool(male and rng.random() < 0.5)
    # size01: 0 for the smallest head, 1 for the biggest; the voice deepens with it.
    size01 = (head_height - 0.36) / 0.08
    f0_lo, f0_hi = (95.0, 135.0) if male else (185.0, 245.0)
    f0 = f0_hi - size01 * (f0_hi - f0_lo) + float(rng.uniform(-4.0, 4.0))
    formant_scale = (1.0 if male else 1.17) * (REFERENCE_HEAD / head_height) ** 1.5
    tilt = 0.80 + 0.03 * (len(SKIN_TONES) - 1 - skin)  # 0.80 (light) … 0.95 (dark)
    syllable_min, syllable_max = SYLLABLE_LENGTH[glasses]
    vibrato_rate, vibrato_depth = VIBRATO[beard]
    return Speaker(
        index=index,
        speaker_id=f"spk{index:03d}",
        gender=gender,
        age_group=age_group,
        head_height=head_height,
        head_aspect=(0.80 if male else 0.72) + 0.04 * size01,
        skin=skin,
        hair_colour=hair_colour,
        hair_style=HAIR_STYLES[gender][age],
        beard=beard,
        glasses=glasses,
        nose_length=0.20 if male else 0.16,
        mouth_width=0.42 if male else 0.36,
        brow_weight=0.045 if male else 0.022,
        f0=f0,
        formant_scale=formant_scale,
        tilt=tilt,
        breathiness={"young": 0.02, "adult": 0.06, "senior": 0.18}[age_group],
        jitter={"young": 0.004, "adult": 0.008, "senior": 0.02}[age_group],
        timbre_hz=GREY_RESONANCE if age_group == "senior" else HAIR_RESONANCES[hair_colour],
        syllable_min=syllable_min,
        syllable_max=syllable_max,
        vibrato_rate=vibrato_rate,
        vibrato_depth=vibrato_depth,
    )
