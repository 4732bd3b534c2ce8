"""Minimal 16-bit PCM WAV reading and writing with the standard library (no soundfile needed).

Samples are float32 in [-1, 1): int16 / 32768 on read, round(clip(x) * 32767) on write. These are the
conventions the fixtures were made with; the Rust side reads the same files with hound."""
import wave

import numpy as np


def read_wav(path):
    """-> (float32 mono samples, sample rate). Refuses anything but 16-bit mono PCM."""
    with wave.open(str(path), "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: need 16-bit mono PCM, got {w.getnchannels()} ch x {8 * w.getsampwidth()} bit")
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0, rate


def write_wav(path, samples, rate):
    """float samples -> 16-bit mono PCM WAV."""
    pcm = np.round(np.clip(np.asarray(samples, np.float64), -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
