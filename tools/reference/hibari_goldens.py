#!/usr/bin/env python3
"""hibari goldens: G2P, acoustic-model outputs and final audio from the reference package.

Pinned reference: PyPI `hibari-tts==0.2.1` (voice "heart", hibari/assets/hibari.onnx) run by
onnxruntime (1 thread, default graph optimizations, exactly as hibari.Hibari does), its own G2P
(hibari.g2p) and its own DSP (hibari.dsp.synth; scipy NOT installed, so the numpy FFT path).

    .venv/bin/python tools/reference/hibari_goldens.py

Writes
  assets/goldens/hibari.safetensors   tensors, names "<s>.<what>" for s in s1, s2 (see TENSORS below)
  assets/goldens/hibari.json          texts, phonemes, ids, durations, stored-frame lists, the measured
                                      noise floors that the Rust tolerances should be set from, log-mel
                                      distance calibration, and the deterministic-noise definition
  assets/goldens/hibari_g2p.json      G2P of a wider sentence set: normalized text, tokens (text, POS tag,
                                      phonemes), the phoneme string and ids; OOV-net outputs for unknown words

Size budget: the five [601, F] spectra are stored as float16 (their rounding, <= 2^-11 relative, is far
below the int8 noise floor measured here), all frames for s1 and every 4th frame for s2. f0 and the
audio are float32 and complete.

Randomness: hibari's DSP draws the noise Z of the `exp(ln) Z` branch from a numpy Generator. For a
reproducible comparison the golden audio uses DetNoise below (splitmix64 -> uniform -> unit-variance),
which the Rust port implements bit for bit; the calibration in hibari.json gives the log-mel distance
between that audio and the package's own numpy-noise audio (seeds 0 and 1)."""
import hashlib
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hibari_numpy  # noqa: E402

import hibari  # noqa: E402
from hibari import Hibari, dsp  # noqa: E402
from hibari.g2p import G2P, normalize  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "assets", "goldens")
SENTENCES = {"s1": ("Hello there.", 1), "s2": ("The capital of France is Paris.", 4)}   # text, frame stride
NOISE_SEED = {"s1": 1, "s2": 2}
OUTPUTS = ("lh", "theta", "ln", "lr", "phi", "f0")
# intermediate graph values exposed as extra outputs (adding them leaves the six outputs bit-identical)
INTERNAL = {"m_text": "/Transpose_22_output_0", "pn_text": "/Transpose_55_output_0",
            "logd": "/dur/dur.2/Conv_output_0", "pro_out": "/pro_out/Conv_output_0"}
G2P_SENTENCES = [
    "Hello there.", "What is the capital of France?", "How many legs does a spider have?",
    "Tell me a joke about computers.", "Why is the ocean salty?", "Please turn on the kitchen lights.",
    "I read the book yesterday, and I will read it again.", "They live near the live music venue.",
    "The meeting is at 7:30 pm on March 3rd, 2024.", "It costs $9.99, or about 8 euros.",
    "Dr. Smith lives at 221B Baker St. in London.", "We need 1,250 chairs and 3.5 tables.",
    "Can't you see it's a U.S.A. thing?", "The parley with Zorblax went grommitudinously well.",
    "Use the API over HTTPS; it's 100% safe!", "I'm going to the store to buy an apple.",
    "He said: \"Wait... what?\"", "The temperature dropped to -5°C overnight.",
]
OOV_WORDS = ["parley", "Zorblax", "grommitudinously", "hibari", "Qwen", "candle"]


class DetNoise:
    """Stand-in for numpy's Generator in hibari.dsp.synth: standard_normal(shape, dtype) returns
    value k (row-major over shape, k = 0, 1, ...) as
        z_k = splitmix64(seed + (k + 1) * 0x9E3779B97F4A7C15)      (the usual splitmix64 finalizer)
        u_k = (z_k >> 40) * 2^-24                                    exact float32 in [0, 1)
        v_k = (u_k - 0.5) * 3.4641016                                float32 ops; unit variance
    synth views the [601, 2F] float32 block as complex64, so Z[bin, f] = v[bin*2F + 2f] + i v[bin*2F + 2f + 1]."""
    GOLDEN = np.uint64(0x9E3779B97F4A7C15)

    def __init__(self, seed):
        self.seed = np.uint64(seed)
        self.next = 0

    def standard_normal(self, shape, dtype=np.float32):
        n = int(np.prod(shape))
        k = np.arange(self.next + 1, self.next + n + 1, dtype=np.uint64)
        self.next += n
        with np.errstate(over="ignore"):
            z = self.seed + k * self.GOLDEN
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
        u = (z >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)
        return ((u - np.float32(0.5)) * np.float32(3.4641016)).astype(dtype).reshape(shape)


def log_mel_distance(a, b):
    """Mean |ln mel_a - ln mel_b| between two 24 kHz signals (the round-trip audio metric).
    STFT: n_fft 1024, hop 256, periodic Hann, no centering/padding, frames = (N - 1024) // 256 + 1 over the
    shorter signal; power |X|^2; 80 triangular HTK mel bands (mel = 2595 log10(1 + f/700)) with edges
    equally spaced in mel from 0 to 12000 Hz, unnormalized (peak 1), over the 513 rfft bin frequencies
    k * 24000 / 1024; ln(mel + 1e-5)."""
    n_fft, hop, n_mels, sr = 1024, 256, 80, 24000
    n = min(len(a), len(b))
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    edges = 700.0 * (10 ** (np.linspace(0, 2595 * np.log10(1 + 12000 / 700), n_mels + 2) / 2595) - 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.maximum(0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))

    def lm(x):
        x = np.asarray(x[:n], np.float64)
        fr = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * win
        return np.log(fb @ (np.abs(np.fft.rfft(fr, axis=1)) ** 2).T + 1e-5)

    return float(np.mean(np.abs(lm(a) - lm(b))))


def rel_l2(x, y):
    return float(np.linalg.norm(x - y) / np.linalg.norm(y))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def session(model, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.graph_optimization_level = level
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def main():
    tts = Hibari()
    model_path = tts.model_path
    aug = onnx.load(model_path)
    for name in INTERNAL.values():
        aug.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    sess = session(aug.SerializeToString())
    sess_noopt = session(model_path, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    np_dyn = hibari_numpy.Model(model_path, "dynamic")
    np_float = hibari_numpy.Model(model_path, "float")

    tensors, meta = {}, {}
    for s, (text, stride) in SENTENCES.items():
        chunks = tts.phonemize(text)
        assert len(chunks) == 1, text
        ps = chunks[0]
        ids = tts.ids(ps)
        feed = {"ids": np.asarray([ids], np.int64), "speed": np.asarray([1.0], np.float32)}
        res = sess.run(None, feed)
        ref = {k: v[0] for k, v in zip(OUTPUTS, res[:6])}
        internal = {k: v[0] for k, v in zip(INTERNAL, res[6:])}
        logd = internal["logd"][0]
        dur = np.maximum(np.round((np.exp(logd) - np.float32(1)) / np.float32(1.0)), 1).astype(np.int64)
        F = ref["f0"].shape[0]
        assert F == 2 * dur.sum()
        x = np.exp(logd.astype(np.float64)) - 1
        margin = float(np.min(np.abs(x - np.floor(x) - 0.5)))

        # final audio through hibari's own DSP from the float16-rounded spectra, with DetNoise
        spec16 = {k: ref[k].astype(np.float16) for k in OUTPUTS[:5]}
        audio = dsp.synth(*(spec16[k].astype(np.float32) for k in OUTPUTS[:5]), ref["f0"], DetNoise(NOISE_SEED[s]))
        pkg0 = dsp.synth(*(ref[k] for k in OUTPUTS), np.random.default_rng(0))
        pkg1 = dsp.synth(*(ref[k] for k in OUTPUTS), np.random.default_rng(1))

        # noise floors: what an independent implementation can reach, measured on this sentence
        floors = {}
        others = {"ort_no_graph_optimizations": {k: v[0] for k, v in zip(OUTPUTS, sess_noopt.run(None, feed))},
                  "numpy_dynamic_quant": np_dyn(ids), "numpy_float_weights": np_float(ids)}
        for name, o in others.items():
            if o["f0"].shape != ref["f0"].shape:
                floors[name] = {"frames": int(o["f0"].shape[0]), "note": "different durations"}
                continue
            floors[name] = {k: round(rel_l2(o[k], ref[k]), 5) for k in OUTPUTS}
            floors[name]["max_abs_lh"] = round(float(np.abs(o["lh"] - ref["lh"]).max()), 4)
            a = dsp.synth(*(o[k] for k in OUTPUTS[:5]), o["f0"], DetNoise(NOISE_SEED[s]))
            floors[name]["log_mel_distance_to_golden_audio"] = round(log_mel_distance(a, audio), 4)
        floors["numpy_dynamic_quant"]["logd_max_abs"] = float(np.abs(others["numpy_dynamic_quant"]["logd"] - logd).max())
        floors["numpy_dynamic_quant"]["m_text_max_abs"] = float(np.abs(np_dyn.text_encoder(np.asarray(ids), "m.text", 4) - internal["m_text"]).max())
        floors["numpy_dynamic_quant"]["pn_text_max_abs"] = float(np.abs(np_dyn.text_encoder(np.asarray(ids), "pn.text", 6) - internal["pn_text"]).max())

        frames = np.arange(0, F, stride, dtype=np.int64)
        tensors[f"{s}.ids"] = np.asarray(ids, np.int64)
        tensors[f"{s}.logd"] = logd.astype(np.float32)
        tensors[f"{s}.durations"] = dur
        tensors[f"{s}.m_text"] = internal["m_text"].astype(np.float32)
        tensors[f"{s}.pn_text"] = internal["pn_text"].astype(np.float32)
        tensors[f"{s}.pro_out"] = internal["pro_out"].astype(np.float32)
        tensors[f"{s}.frames"] = frames
        for k in OUTPUTS[:5]:
            tensors[f"{s}.{k}"] = np.ascontiguousarray(spec16[k][:, frames])
        tensors[f"{s}.f0"] = ref["f0"].astype(np.float32)
        tensors[f"{s}.audio"] = audio.astype(np.float32)
        meta[s] = {
            "text": text, "phonemes": ps, "ids": [int(i) for i in ids], "durations": dur.tolist(),
            "frames_F": int(F), "audio_samples": int(len(audio)), "stored_frames": f"every {stride} frame(s) from 0",
            "duration_rounding_margin": round(margin, 4), "noise_seed": NOISE_SEED[s],
            "noise_floors_vs_golden (relative L2 unless named)": floors,
            "log_mel_calibration": {
                "golden_vs_package_numpy_noise_seed0": round(log_mel_distance(audio, pkg0), 4),
                "package_seed0_vs_seed1": round(log_mel_distance(pkg0, pkg1), 4),
                "golden_vs_silence": round(log_mel_distance(audio, np.zeros_like(audio)), 4),
            },
        }
        print(f"{s}: {text!r} L={len(ids)} F={F} margin={margin:.3f}")
        for name, fl in floors.items():
            print(f"   {name:28s} {fl}")
        print("   log-mel:", meta[s]["log_mel_calibration"])

    path = os.path.join(OUT, "hibari.safetensors")
    save_file(tensors, path)
    info = {
        "reference": f"hibari-tts=={hibari.__version__} voice heart ({os.path.basename(model_path)}), onnxruntime "
                     f"{ort.__version__} CPU 1 thread default optimizations, hibari.dsp with FFT backend {dsp.FFT_BACKEND}",
        "model_sha256": sha256(model_path),
        "generated_by": "tools/reference/hibari_goldens.py",
        "tensors": {
            "<s>.ids": "int64 [L] phoneme ids with the 0 pad at both ends (model input)",
            "<s>.logd": "float32 [L] duration-head output before exp (graph value /dur/dur.2/Conv)",
            "<s>.durations": "int64 [L] frames of 25 ms per phoneme = max(1, round_half_even(exp(logd) - 1))",
            "<s>.m_text / <s>.pn_text": "float32 [128, L] / [192, L] text-encoder outputs after their final LayerNorm",
            "<s>.pro_out": "float32 [4, T] prosody head (T = sum(durations)); rows 0,1 = f0/100 of half-frames 2t, 2t+1; rows 2,3 = energy/5",
            "<s>.frames": "int64 [n] which of the F = 2T frames the spectra below keep",
            "<s>.lh|theta|ln|lr|phi": "float16 [601, n] the model outputs at those frames",
            "<s>.f0": "float32 [F] model output f0 (Hz; <= 40 means unvoiced in the DSP)",
            "<s>.audio": "float32 [300 F] 24 kHz: hibari.dsp.synth(float16 spectra of ALL frames upcast, f0, DetNoise(noise_seed))",
        },
        "deterministic_noise": DetNoise.__doc__.strip(),
        "log_mel_distance": log_mel_distance.__doc__.strip(),
        "sentences": meta,
    }
    with open(os.path.join(OUT, "hibari.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1, ensure_ascii=False)
        f.write("\n")

    # G2P goldens
    g2p = G2P()
    rows = []
    for text in G2P_SENTENCES:
        sents = []
        for sent in tts.split_sentences(text):
            norm = normalize(sent)
            toks = g2p.phonemize_tokens(g2p.tokenize(norm))
            ps = g2p(sent)
            sents.append({"sentence": sent, "normalized": norm,
                          "tokens": [[t.text, t.tag, t.phonemes, t.whitespace] for t in toks],
                          "phonemes": ps, "ids": tts.ids(ps)})
        rows.append({"text": text, "sentences": sents, "model_chunks": tts.phonemize(text)})
    oov = []
    oov_np = hibari_numpy.OOVNet(os.path.join(os.path.dirname(model_path), "oov.onnx"))
    for w in OOV_WORDS:
        chars = [g2p.oov.cin[c] for c in w if c in g2p.oov.cin][: g2p.oov.maxlen]
        raw = g2p.oov.sess.run(None, {"chars": np.asarray([chars], np.int64)})[0][0]
        assert np.array_equal(oov_np(chars), raw), f"numpy OOV net disagrees with onnxruntime on {w!r}"
        oov.append({"word": w, "char_ids": chars, "net_ids": raw.tolist(), "phonemes": g2p.oov(w),
                    "lexicon_known": g2p.lexicon.is_known(w, "NN")})
    with open(os.path.join(OUT, "hibari_g2p.json"), "w", encoding="utf-8") as f:
        json.dump({"reference": f"hibari-tts=={hibari.__version__} hibari.g2p.G2P(british=False)",
                   "generated_by": "tools/reference/hibari_goldens.py",
                   "token_fields": ["text", "POS tag", "phonemes (null = unknown)", "whitespace after"],
                   "texts": rows, "oov": oov}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    for name in ("hibari.safetensors", "hibari.json", "hibari_g2p.json"):
        print(f"wrote assets/goldens/{name} ({os.path.getsize(os.path.join(OUT, name)) / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
