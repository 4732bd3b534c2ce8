#!/usr/bin/env python3
"""Generate the ears' test utterances (16 kHz mono 16-bit WAV) into assets/audio/, plus manifest.json.

The voices are deliberately NOT the Talker's (hibari): Debian's flite 2.2 (voices slt, rms, awb, kal16)
and espeak-ng 1.51 (en-us, en-gb variants). Setup:  apt-get install -y espeak-ng flite sox

    .venv/bin/python tools/make_test_utterances.py

Each utterance is synthesized, resampled to 16 kHz by sox when the engine's native rate differs
(espeak-ng speaks at 22.05 kHz; `sox -D` = no dither, so the result is deterministic), trimmed to its
speech (first/last |x| > 0.01, +-20 ms), padded with LEAD/TRAIL of digital silence (0.25 s; 0.05 s for
mm_hmm) and scaled to a -3 dBFS peak. Both engines are deterministic too, so rerunning reproduces the
committed files byte for byte (sha256 in manifest.json; same Debian package versions).
Afterwards run tools/reference/whisper_transcripts.py to refresh the reference transcripts."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
from wavio import read_wav, write_wav  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "assets", "audio")
RATE = 16000
LEAD, TRAIL = 0.25, 0.25          # seconds of silence around each utterance
PEAK = 10 ** (-3 / 20)

# file, text, engine, voice, purpose. Texts have no digits, so the exact Whisper transcript is unambiguous.
UTTERANCES = [
    ("q_capital_france.wav", "What is the capital of France?", "flite", "kal16", "question"),
    ("q_spider_legs.wav", "How many legs does a spider have?", "flite", "slt", "question"),
    ("q_weather_today.wav", "What is the weather like today?", "espeak-ng", "en-us", "question"),
    ("q_tell_joke.wav", "Tell me a joke about computers.", "flite", "awb", "question"),
    ("q_ocean_salty.wav", "Why is the ocean salty?", "flite", "rms", "question"),
    ("s_kitchen_lights.wav", "Please turn on the kitchen lights.", "espeak-ng", "en-gb+m3", "request"),
    ("bench_3s.wav", "It is a lovely day for a long walk in the park.", "flite", "slt", "benchmark (~3 s)"),
    ("mm_hmm.wav", "Mm hmm.", "espeak-ng", "en-us+f2", "backchannel (~0.3 s of speech, not a turn)"),
]
# Per-file changes to the defaults: espeak-ng words per minute, silence around the speech.
OPTIONS = {"mm_hmm.wav": {"speed": 320, "lead": 0.05, "trail": 0.05}}
# A pause inside one file, for VAD end-of-turn tests: phrase, PAUSE s of silence, phrase.
PAUSE = 0.8
TWO_PHRASES = ("vad_two_phrases.wav", ("Turn on the lights.", "Then close the door."), "flite", "rms")
NOISE = ("noise_1s.wav", 1.0, 0.003, 20251122)   # file, seconds, rms, seed: white noise about -50 dBFS


def run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def synth(engine, voice, text, tmp, speed=None):
    raw = os.path.join(tmp, "raw.wav")
    if engine == "flite":
        run(["flite", "-voice", voice, "-t", text, "-o", raw])
    elif engine == "espeak-ng":
        run(["espeak-ng", "-v", voice, *(["-s", str(speed)] if speed else []), "-w", raw, text])
    else:
        raise ValueError(engine)
    res = os.path.join(tmp, "16k.wav")
    run(["sox", "-D", raw, "-r", str(RATE), "-c", "1", "-b", "16", res, "rate", "-v"])
    x, rate = read_wav(res)
    assert rate == RATE
    return x


def trim(x, thresh=0.01, margin=0.02):
    idx = np.flatnonzero(np.abs(x) > thresh)
    if idx.size == 0:
        raise RuntimeError("engine produced silence")
    m = int(margin * RATE)
    return x[max(0, idx[0] - m): idx[-1] + m + 1]


def finish(x, lead=LEAD, trail=TRAIL):
    x = np.concatenate([np.zeros(int(lead * RATE), np.float32), x, np.zeros(int(trail * RATE), np.float32)])
    return (x * (PEAK / np.max(np.abs(x)))).astype(np.float32)


def tool_version(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return (p.stdout or p.stderr).strip().splitlines()[0]


def main():
    for tool in ("flite", "espeak-ng", "sox"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install -y espeak-ng flite sox")
    os.makedirs(OUT, exist_ok=True)
    files = []
    with tempfile.TemporaryDirectory() as tmp:
        def save(name, x, **meta):
            path = os.path.join(OUT, name)
            write_wav(path, x, RATE)
            with open(path, "rb") as f:
                sha = hashlib.sha256(f.read()).hexdigest()
            files.append({"file": name, **meta, "seconds": round(len(x) / RATE, 3), "sha256": sha})
            print(f"{name:24s} {len(x) / RATE:5.2f} s  {meta.get('voice', '')}")

        for name, text, engine, voice, purpose in UTTERANCES:
            opt = OPTIONS.get(name, {})
            x = trim(synth(engine, voice, text, tmp, opt.get("speed")))
            lead, trail = opt.get("lead", LEAD), opt.get("trail", TRAIL)
            save(name, finish(x, lead, trail), text=text, engine=engine, voice=voice,
                 **({"espeak_speed_wpm": opt["speed"]} if "speed" in opt else {}), purpose=purpose,
                 speech_segments_s=[[lead, round(lead + len(x) / RATE, 3)]])
        name, (a, b), engine, voice = TWO_PHRASES
        xa, xb = (trim(synth(engine, voice, t, tmp)) for t in (a, b))
        x = finish(np.concatenate([xa, np.zeros(int(PAUSE * RATE), np.float32), xb]))
        save(name, x, text=f"{a} {b}", engine=engine, voice=voice,
             purpose=f"VAD: two phrases with a {PAUSE} s pause; speech ends at "
                     f"{LEAD + (len(xa) + int(PAUSE * RATE) + len(xb)) / RATE:.3f} s",
             speech_segments_s=[[LEAD, round(LEAD + len(xa) / RATE, 3)],
                                [round(LEAD + (len(xa) + int(PAUSE * RATE)) / RATE, 3),
                                 round(LEAD + (len(xa) + int(PAUSE * RATE) + len(xb)) / RATE, 3)]])
        name, secs, rms, seed = NOISE
        noise = np.random.default_rng(seed).standard_normal(int(secs * RATE)).astype(np.float32) * rms
        save(name, noise, text="", engine="numpy default_rng", voice=f"white noise rms {rms}, seed {seed}",
             purpose="no speech: VAD must stay low, Whisper must not produce a turn")
    manifest = {
        "generated_by": "tools/make_test_utterances.py",
        "format": "16 kHz mono 16-bit PCM WAV",
        "tools": {"flite": tool_version(["flite", "--version"]), "espeak-ng": tool_version(["espeak-ng", "--version"]),
                  "sox": tool_version(["sox", "--version"])},
        "files": files,
    }
    with open(os.path.join(OUT, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
