#!/usr/bin/env python3
"""Reference round trip for the committed Talker questions (assets/text/talker_questions.json):
hibari-tts 0.2.1 (voice heart, noise seeds 0, 1, 2) -> 24 kHz -> sox `rate -v` to 16 kHz ->
Whisper tiny.en reference (whisper_transcripts.Reference) -> exact text?

    .venv/bin/python tools/reference/roundtrip_check.py

Writes assets/goldens/roundtrip_reference.json. All questions there are exact for every seed; a question
that is not exact with the reference has no place in the Rust round-trip test. Needs sox on PATH."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wavio import read_wav, write_wav  # noqa: E402
from whisper_transcripts import Reference  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEEDS = (0, 1, 2)


def main():
    from hibari import Hibari
    with open(os.path.join(ROOT, "assets", "text", "talker_questions.json"), encoding="utf-8") as f:
        questions = json.load(f)["questions"]
    tts, ref = Hibari(), Reference()
    rows, ok = [], True
    with tempfile.TemporaryDirectory() as d:
        for q in questions:
            row = {"question": q, "phonemes": tts.phonemize(q), "transcripts": {}}
            for seed in SEEDS:
                write_wav(os.path.join(d, "a.wav"), tts(q, seed=seed), 24000)
                subprocess.run(["sox", "-D", os.path.join(d, "a.wav"), "-r", "16000", os.path.join(d, "b.wav"),
                                "rate", "-v"], check=True)
                audio, _ = read_wav(os.path.join(d, "b.wav"))
                text = ref.transcribe(audio)[0].strip()
                row["transcripts"][str(seed)] = text
                ok &= text == q
                print(f"{text == q!s:5s} seed {seed} {text!r}")
            rows.append(row)
    with open(os.path.join(ROOT, "assets", "goldens", "roundtrip_reference.json"), "w", encoding="utf-8") as f:
        json.dump({"generated_by": "tools/reference/roundtrip_check.py",
                   "pipeline": "hibari-tts==0.2.1 heart -> wav16 -> sox rate -v 16 kHz -> wav16 -> ctranslate2 Whisper tiny.en (whisper_transcripts.py)",
                   "all_exact": ok, "questions": rows}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    if not ok:
        sys.exit("some question does not round-trip exactly with the reference")


if __name__ == "__main__":
    main()
