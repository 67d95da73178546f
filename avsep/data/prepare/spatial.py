"""Binaural rendering with a spherical-head model (the LAVSS / FAIR-Play stand-in).

Conventions: azimuth is in radians, 0 straight ahead, positive to the **right** (the listener's right
ear is at +pi/2). A source on the right reaches the right ear first and louder.

The model has two parts, both applied in the frequency domain so that they are exact and deterministic:

* interaural time difference from Woodworth's formula ``ITD = (r / c) (|theta| + sin|theta|)``, applied as
  a fractional (band-limited) delay of the far ear only;
* interaural level difference from the Brown & Duda (1998) head-shadow filter
  ``H(w, t) = (1 + j a(t) w / (2 w0)) / (1 + j w / (2 w0))`` with ``w0 = c / r`` and
  ``a(t) = (1 + a_min / 2) + (1 - a_min / 2) cos(t / t_min * pi)``, ``t`` being the angle between the source
  and the ear's axis. Only its **magnitude** is applied (zero phase): the phase of the one-pole/one-zero
  filter would add an extra low-frequency delay of about 0.1 ms per ear, and keeping the timing cue purely
  Woodworth's makes the interaural lag exactly the documented ITD.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.fft import next_fast_len

HEAD_RADIUS = 0.0875  # metres
SPEED_OF_SOUND = 343.0  # metres per second
ALPHA_MIN = 0.1
THETA_MIN = math.radians(150.0)
MAX_AZIMUTH_DEG = 80.0


def woodworth_itd(azimuth_rad: float, head_radius: float = HEAD_RADIUS, c: float = SPEED_OF_SOUND) -> float:
    """Interaural time difference in seconds (positive: the right ear leads) for a far source.

    Woodworth's formula ``(r / c)(theta + sin theta)`` holds for ``|theta| <= pi/2``; larger azimuths are
    folded to the front (a source behind at 120 degrees has the ITD of one at 60 degrees).
    """
    theta = float(azimuth_rad)
    if abs(theta) > math.pi / 2:
        theta = math.copysign(math.pi - abs(theta), theta)
    return (head_radius / c) * (theta + math.sin(theta))


def head_shadow_alpha(angle_from_ear_rad: float) -> float:
    """Brown-Duda head-shadow coefficient for a source ``angle_from_ear_rad`` away from the ear's axis."""
    return (1.0 + ALPHA_MIN / 2.0) + (1.0 - ALPHA_MIN / 2.0) * math.cos(angle_from_ear_rad / THETA_MIN * math.pi)


def head_shadow_gain(freqs_hz: np.ndarray, angle_from_ear_rad: float, head_radius: float = HEAD_RADIUS,
                     c: float = SPEED_OF_SOUND) -> np.ndarray:
    """Magnitude of the Brown-Duda head-shadow filter at ``freqs_hz`` (1 at DC, ``alpha`` at high freq)."""
    w = 2.0 * math.pi * np.asarray(freqs_hz, dtype=np.float64)
    w0 = c / head_radius
    x = w / (2.0 * w0)
    alpha = head_shadow_alpha(angle_from_ear_rad)
    return np.sqrt((1.0 + (alpha * x) ** 2) / (1.0 + x**2))


def ear_angles(azimuth_rad: float) -> tuple[float, float]:
    """Angles (left, right) between the source direction and each ear's axis, in ``[0, pi]``."""
    def wrap(a: float) -> float:
        a = (a + math.pi) % (2.0 * math.pi) - math.pi
        return abs(a)

    return wrap(azimuth_rad + math.pi / 2.0), wrap(azimuth_rad - math.pi / 2.0)


def position_to_azimuth(x: float, max_deg: float = MAX_AZIMUTH_DEG) -> float:
    """Map a normalised horizontal frame position ``x`` in [0, 1] to an azimuth in radians.

    ``x = 0`` (left edge of the frame) is ``-max_deg`` (listener's left), ``x = 0.5`` straight ahead,
    ``x = 1`` is ``+max_deg`` (right).
    """
    x = min(max(float(x), 0.0), 1.0)
    return math.radians((2.0 * x - 1.0) * max_deg)


def spatialize(mono: np.ndarray, sample_rate: int, azimuth_rad: float, head_radius: float = HEAD_RADIUS,
               c: float = SPEED_OF_SOUND) -> np.ndarray:
    """Render a mono signal as binaural stereo ``(2, n)`` (row 0 left, row 1 right) from ``azimuth_rad``.

    The near ear gets the head-shadow boost and no delay; the far ear gets the shadow and a fractional
    delay equal to the Woodworth ITD. At azimuth 0 both channels are identical. The output has the input's
    length and dtype float32; the delayed tail beyond ``n`` is cut (the signal is a finite clip).
    """
    x = np.asarray(mono, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"spatialize expects a 1-D mono signal, got shape {x.shape}")
    n = x.shape[0]
    if n == 0:
        return np.zeros((2, 0), dtype=np.float32)
    itd = woodworth_itd(azimuth_rad, head_radius, c)
    delay = abs(itd) * sample_rate  # samples, applied to the far ear
    pad = int(math.ceil(delay)) + 256  # room for the delay and the short zero-phase filter tails
    nfft = next_fast_len(n + 2 * pad, real=True)
    buf = np.zeros(nfft)
    buf[pad : pad + n] = x
    spec = np.fft.rfft(buf)
    freqs = np.fft.rfftfreq(nfft, d=1.0 / sample_rate)
    ang_l, ang_r = ear_angles(azimuth_rad)
    out = np.empty((2, n), dtype=np.float32)
    for ch, ang in enumerate((ang_l, ang_r)):
        s = spec * head_shadow_gain(freqs, ang, head_radius, c)
        far = (ch == 0 and itd > 0) or (ch == 1 and itd < 0)
        if far and delay > 0:
            s = s * _delay_response(freqs, delay / sample_rate, nfft)
        y = np.fft.irfft(s, n=nfft)
        out[ch] = y[pad : pad + n]
    return out


def _delay_response(freqs: np.ndarray, seconds: float, nfft: int) -> np.ndarray:
    """Frequency response of a pure delay; the Nyquist bin (even ``nfft``) is kept real."""
    h = np.exp(-2j * np.pi * freqs * seconds)
    if nfft % 2 == 0:
        h[-1] = np.cos(2.0 * np.pi * freqs[-1] * seconds)
    return h

