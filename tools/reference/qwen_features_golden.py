"""Qwen2.5-Omni's audio features of a committed utterance, for the Rust front end
(thinker/src/qwen/features.rs).

The Qwen2.5-Omni processor runs transformers' WhisperFeatureExtractor with 128 mel bins at
16 kHz, `padding="max_length"` (zero padding to 30 s) and `return_attention_mask=True`; the
Thinker sees the frames the mask keeps (ceil(samples / 160)). This writes

  assets/goldens/qwen/log_mel.safetensors
    samples              f32 [S]         the first 1.1 s of assets/audio/q_capital_france.wav, taken
                                         to 16 kHz by linear interpolation (any resampler will do:
                                         the Rust test reads these samples, not the wav)
    input_features       f32 [128, T]    the extractor's output, T = ceil(S / 160)
    loud_end_features    f32 [128, 30]   the same for a clip cut off loud: samples[:4800] with its
                                         last 60 samples replaced by LOUD_END (the Rust test builds
                                         the same clip). The extractor's maximum includes the frames
                                         past the mask whose windows reach into the clip's end.

The file stays under 150 KB (1.1 s: tiny_b's 0.5 s blocks give two whole blocks and a partial one).

    .venv/bin/python tools/reference/qwen_features_golden.py
"""

import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

import transformers
from transformers import WhisperFeatureExtractor

sys.path.insert(0, os.path.dirname(__file__))
from wavio import read_wav  # noqa: E402

assert transformers.__version__ == "5.23.0", transformers.__version__

SECONDS = 1.1
LOUD_END = np.array([0, 0.6, 0.9, 0.6, 0, -0.6, -0.9, -0.6], dtype=np.float32)


def to_16k(x, rate):
    n = int(len(x) * 16000 / rate)
    return np.interp(np.arange(n) * rate / 16000, np.arange(len(x)), x).astype(np.float32)


def extract(fe, x):
    out = fe(x, sampling_rate=16000, padding="max_length", return_attention_mask=True,
             return_tensors="np")
    frames = int(out["attention_mask"].sum())
    assert frames == -(-len(x) // 160), frames
    return torch.from_numpy(out["input_features"][0, :, :frames].astype(np.float32).copy())


def main():
    x, rate = read_wav("assets/audio/q_capital_france.wav")
    x = to_16k(np.asarray(x, dtype=np.float32), rate)[: int(SECONDS * 16000)]
    fe = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, hop_length=160,
                                 chunk_length=300, n_fft=400)
    loud = x[:4800].copy()
    loud[-60:] = np.tile(LOUD_END, 8)[:60]
    feats = extract(fe, x)
    loud_feats = extract(fe, loud)
    save_file({"samples": torch.from_numpy(x.copy()), "input_features": feats,
               "loud_end_features": loud_feats},
              "assets/goldens/qwen/log_mel.safetensors")
    print("samples", x.shape, "features", tuple(feats.shape), "loud end", tuple(loud_feats.shape))


if __name__ == "__main__":
    main()
