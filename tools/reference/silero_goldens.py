#!/usr/bin/env python3
"""Silero VAD goldens: per-window speech probabilities of committed 16 kHz utterances.

Pinned reference: PyPI `silero-vad==6.2.3` (installed with --no-deps: no torch), its
silero_vad/data/silero_vad.onnx run by onnxruntime (1 thread) with the package's streaming rule
(OnnxWrapper.audio_forward, reimplemented here without torch because the wrapper imports torch):
  * the audio is zero-padded at the end to a multiple of 512 samples;
  * each 512-sample window is prefixed with the previous 64 input samples (64 zeros for the first);
  * the (2, 1, 128) LSTM state (h, c) starts at zero and is carried from window to window;
  * sr = 16000.
The same run is cross-checked against the wheel's other exports (silero_vad_16k_op15.onnx streaming,
silero_vad_16k_sequence.onnx in one block call) and against silero_numpy.py, the numpy
reimplementation the Rust port follows, run on the weights of silero_vad_16k_op15.onnx: all must
agree within 1e-4. The same numpy code on the wheel's silero_vad_16k.safetensors is also run and its
deviation recorded: that file is an older checkpoint and must not be used (see silero_numpy.py).

    .venv/bin/python tools/reference/silero_goldens.py

Writes assets/goldens/silero_vad.json."""
import hashlib
import json
import os
import sys

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from silero_numpy import CONTEXT, SileroNumpy, data_dir, load_weights, onnx_weights, windows  # noqa: E402
from wavio import read_wav  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILES = ["q_capital_france.wav", "vad_two_phrases.wav", "noise_1s.wav"]
TOL = 1e-4


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_streaming(sess, audio):
    """OnnxWrapper.audio_forward for one mono 16 kHz signal -> (probs [N], final state (2,1,128))."""
    state = np.zeros((2, 1, 128), np.float32)
    context = np.zeros((1, CONTEXT), np.float32)
    sr = np.array(16000, np.int64)
    probs = []
    for win in windows(audio):
        x = np.concatenate([context, win[None]], axis=1)
        out, state = sess.run(None, {"input": x, "state": state, "sr": sr})
        context = x[:, -CONTEXT:]
        probs.append(float(out[0, 0]))
    return np.array(probs, np.float32), state


def ort_sequence(sess, audio):
    """The wheel's batched export: all windows (with their contexts) in one call."""
    frames = windows(audio)
    ctx = np.zeros((len(frames), CONTEXT), np.float32)
    ctx[1:] = frames[:-1, -CONTEXT:]
    block = np.concatenate([ctx, frames], axis=1)
    h = np.zeros((1, 1, 128), np.float32)
    c = np.zeros((1, 1, 128), np.float32)
    probs, _, _ = sess.run(["speech_probs", "hn", "cn"], {"input": block, "h": h, "c": c})
    return probs.reshape(-1)


def main():
    d = data_dir()
    st_path = os.path.join(d, "silero_vad_16k.safetensors")
    op15_path = os.path.join(d, "silero_vad_16k_op15.onnx")
    weights = onnx_weights(op15_path)
    st_weights = load_weights(st_path)
    stock = session(os.path.join(d, "silero_vad.onnx"))
    op15 = session(os.path.join(d, "silero_vad_16k_op15.onnx"))
    seq = session(os.path.join(d, "silero_vad_16k_sequence.onnx"))
    with open(op15_path, "rb") as f:
        op15_sha = hashlib.sha256(f.read()).hexdigest()
    out = []
    for name in FILES:
        path = os.path.join(ROOT, "assets", "audio", name)
        audio, rate = read_wav(path)
        assert rate == 16000
        probs, state = ort_streaming(stock, audio)
        p15, _ = ort_streaming(op15, audio)
        pseq = ort_sequence(seq, audio)
        model = SileroNumpy(weights)
        pnp = np.array([model.step(w) for w in windows(audio)], np.float32)
        st_model = SileroNumpy(st_weights)
        pst = np.array([st_model.step(w) for w in windows(audio)], np.float32)
        errs = {"op15": np.abs(p15 - probs).max(), "sequence": np.abs(pseq - probs).max(),
                "numpy": np.abs(pnp - probs).max(),
                "numpy_state": max(np.abs(model.h - state[0, 0]).max(), np.abs(model.c - state[1, 0]).max())}
        print(f"{name:24s} windows={len(probs):4d} max|diff| vs silero_vad.onnx: "
              + " ".join(f"{k}={v:.2e}" for k, v in errs.items()))
        print(f"{'':24s} (numpy on silero_vad_16k.safetensors, the older checkpoint: max|diff| {np.abs(pst - probs).max():.3f})")
        for k, v in errs.items():
            assert v < TOL, f"{name}: {k} differs from the ONNX reference by {v}"
        with open(path, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        out.append({"file": f"assets/audio/{name}", "sha256": sha, "num_samples": len(audio),
                    "num_windows": len(probs), "probs": [round(float(p), 7) for p in probs],
                    "final_h": [round(float(v), 7) for v in state[0, 0]],
                    "final_c": [round(float(v), 7) for v in state[1, 0]],
                    "safetensors_checkpoint_max_abs_diff": round(float(np.abs(pst - probs).max()), 4)})
    golden = {
        "reference": "silero-vad==6.2.3 silero_vad/data/silero_vad.onnx, onnxruntime " + ort.__version__ + " CPU, 1 thread",
        "weights": {"file": "silero_vad/data/silero_vad_16k_op15.onnx", "sha256": op15_sha,
                    "note": "same weights as silero_vad.onnx's 16 kHz branch; silero_vad_16k.safetensors is a "
                            "different, older checkpoint (see safetensors_checkpoint_max_abs_diff)"},
        "rule": "pad end with zeros to a multiple of 512; window i = samples [512i, 512i+512) prefixed by the "
                "previous 64 input samples (zeros for i = 0); h, c start at 0 and carry over; sr 16000",
        "tolerance_used_here": TOL,
        "generated_by": "tools/reference/silero_goldens.py",
        "files": out,
    }
    path = os.path.join(ROOT, "assets", "goldens", "silero_vad.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    print("wrote", os.path.relpath(path, ROOT))


if __name__ == "__main__":
    main()
