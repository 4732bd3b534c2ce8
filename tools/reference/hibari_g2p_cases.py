#!/usr/bin/env python3
"""hibari G2P test cases: a broad sentence set phonemized by the reference package.

Pinned reference: PyPI `hibari-tts==0.2.1`, `hibari.g2p.G2P(british=False)` (the G2P of voice
"heart") and `Hibari.split_sentences` / `Hibari.phonemize` (sentence split, 400-code-point chunks).

    .venv/bin/python tools/reference/hibari_g2p_cases.py

Writes assets/goldens/hibari_g2p_cases.json:
  cases            [{text, phonemes}]   G2P(text) for ~150 sentences: numbers, dates, times, money,
                                        units, abbreviations, contractions, punctuation, made-up and
                                        capitalized words, acronyms, questions, symbols
  split_sentences  [{text, sentences}]  Hibari.split_sentences(text)
  chunks           [{text, chunks}]     Hibari.phonemize(text) (sentence split + G2P + 400-code-point
                                        clause packing), for long texts
The Rust test (talker/tests/g2p.rs) asserts every entry exactly."""
import json
import os

import hibari
from hibari import Hibari
from hibari.g2p import G2P

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "assets", "goldens", "hibari_g2p_cases.json")

CASES = [
    # plain sentences, questions, heteronyms
    "The quick brown fox jumps over the lazy dog.",
    "Where are you going tonight?",
    "Could you close the door, please?",
    "I can't believe it's already Friday!",
    "She wound the bandage around the wound.",
    "The wind was too strong to wind the sail.",
    "They refuse to collect the refuse.",
    "Please record the record for me.",
    "I will present the present to her.",
    "He wanted to lead the team, not carry lead pipes.",
    "Does the bass player like bass fishing?",
    "We object to that object.",
    "Are you content with the content?",
    "An apple a day keeps the doctor away.",
    "The end of the road is near.",
    "I am here, and you are there.",
    "Am I late?",
    "Is it in or out?",
    "Come in!",
    "Who used to live here?",
    "I used the old computer.",
    "It's a used car.",
    "Go by the river, and stop by later.",
    "To be or not to be, that is the question.",
    "I want to eat an orange.",
    # contractions and possessives
    "Don't worry, we'll be fine.",
    "You're right, they've already left.",
    "He'd have known if she'd told him.",
    "Y'all shouldn't've done that.",
    "It's John's car, not the Smiths' house.",
    "The dogs' bowls were empty.",
    "I'd like a cup of tea.",
    "Let's rock 'n' roll!",
    "Where's the cat's toy?",
    "O'Brien met d'Artagnan at McDonald's.",
    # numbers
    "There are 7 days in a week.",
    "He was born in 1987.",
    "The population is 8,045,311 people.",
    "Pi is roughly 3.14159.",
    "She finished 1st, and he came 22nd.",
    "It happened on the 3rd floor of building 42.",
    "Count from 0 to 10.",
    "The score was 21 to 13.",
    "We sold 1,000,000 copies.",
    "That's 0.5 percent of .75 liters.",
    "In the 1990s, music was different.",
    "The temperature is -12 degrees.",
    "Room 101 is on the left.",
    "Call me at 555-123-4567.",
    "My number is 867-5309.",
    "The year 2000 was a leap year.",
    "He was 100 years old in 1905.",
    "The 80's were fun.",
    "Pages 12-15 cover the topic.",
    "It takes 2-3 weeks.",
    "About 3/4 of the class passed.",
    "Add 1/2 cup of sugar.",
    "The ratio was 7/30.",
    "He scored +5 points.",
    "I need 10 apples, 20 pears and 300 grapes.",
    "It's version 2.0.1 of the app.",
    "Flight 370 departs at gate 12.",
    "She's the 101st guest.",
    "The 4th of July is a holiday.",
    # money
    "It costs $5.",
    "It costs $1.",
    "It costs $3.50 at the store.",
    "The house sold for $1.2 million.",
    "He earned $50k last year.",
    "The bill was £20.",
    "Tickets are €15 each.",
    "It was only 99¢.",
    "The price is ¥500.",
    "They paid Rs. 200 for it.",
    "The fund holds USD 3 billion.",
    "She has $0.05 left.",
    "We raised $2,500,000.",
    "A coffee costs $4.25, and a muffin $3.",
    # dates and times
    "The meeting is at 9:00.",
    "Wake me at 6:05 am.",
    "The show starts at 8:15 PM.",
    "The timer reads 12:30:45.",
    "Let's meet at 10:30 tomorrow.",
    "The deadline is 2024-06-15.",
    "I was born on 12/25/1990.",
    "See you on 3/4/21.",
    "The party is on Jan. 5th, 2023.",
    "It's due September 30.",
    "We arrived on the 14th of February.",
    "The 1st of May is a holiday.",
    "Sept. 11 changed everything.",
    # units and symbols
    "The trail is 5 km long.",
    "It weighs 1 kg.",
    "The box weighs 12 lbs.",
    "Drive at 60 mph.",
    "It's 25°C outside.",
    "Set the oven to 350°F.",
    "The file is 4 GB.",
    "She ran 26.2 mi in 3 hrs.",
    "Growth was 15% this year.",
    "Tom & Jerry is a cartoon.",
    "Email me @ work.",
    "x = y + 2",
    "5 > 3 and 2 < 4.",
    "It's ~10 minutes away.",
    "Use #hashtags wisely.",
    "Issue #42 is fixed.",
    "The © symbol means copyright.",
    "Water is H2O.",
    # abbreviations and titles
    "Dr. Jones lives on Elm St.",
    "Mr. and Mrs. Smith arrived.",
    "Prof. Lee teaches at MIT.",
    "St. Louis is in Missouri.",
    "Apples vs. oranges.",
    "It's approx. 5 miles.",
    "He works at Acme Inc. in Boston.",
    "See Fig. 3 for details.",
    "Chapter IV begins here.",
    "Henry VIII had six wives.",
    "World War II ended in 1945.",
    "Queen Elizabeth II visited.",
    "No. 5 is my favorite.",
    "The U.S. and the U.K. signed it.",
    "It happened at 5 p.m. yesterday.",
    "Send it ASAP, FYI.",
    "BTW, the meeting moved.",
    # acronyms and capitalization
    "NASA launched a rocket.",
    "The FBI and the CIA work together.",
    "I love HTML and CSS.",
    "THIS IS VERY IMPORTANT.",
    "Read the README file.",
    "My iPhone and MacBook are new.",
    "The JavaScript code uses JSON.",
    "GPT models are large.",
    "The NBA finals start today.",
    "Visit www.example.com for info.",
    "Email john.doe@example.com now.",
    "The URL is https://example.org/path.",
    # OOV and made-up words
    "The flibbertigibbet zoomed past.",
    "Blorptastic snorgles wibbled happily.",
    "Xylophonic quazzles are rare.",
    "Grommitudinously, the zorblax agreed.",
    "Kubernetes and Terraform are tools.",
    "Qwen and Llama are models.",
    "The Pokémon café served crêpes.",
    "Naïve coöperation is rare.",
    "Schwarzenegger starred in it.",
    "Tchaikovsky composed ballets.",
    "Supercalifragilisticexpialidocious!",
    "The wug-like creatures ran.",
    "He re-entered the well-known building.",
    "It's a state-of-the-art system.",
    "The snake_case and camelCase names.",
    "B2B sales and P2P networks grew.",
    # punctuation and quotes
    "He said, \"Hello!\"",
    "Wait... what happened?",
    "Well — I don't know.",
    "The options are: red, green, or blue.",
    "She asked (quietly) for help.",
    "'Tis the season.",
    "“Smart quotes” are ‘tricky’.",
    "Yes; no; maybe.",
    "Really?!",
    "Hmm, interesting...",
    "Stop - don't move.",
    "The 9-to-5 job pays well.",
    "Read [hibari](/hˈibɑɹi/) aloud.",
]

SPLIT = [
    "Hello there. How are you?",
    "Dr. Smith went home. He was tired.",
    "J. K. Rowling wrote it. Then she rested.",
    "He said \"Stop.\" Then he left.",
    "Wait... really? Yes!",
    "It costs $5. that is cheap.",
    "First line.\nSecond line.\n\nNew paragraph here.",
    "Mr. Brown met Mrs. Green at St. Paul's. They talked.",
    "The U.S. Army arrived. Everyone cheered.",
    "Is it (really) over? I think so.",
    "He shouted (loudly!) and ran. Nobody followed.",
    "No end punctuation here",
    "   Leading and trailing spaces.   Another one.  ",
    "The end… Or is it?",
    "She left.She came back.",
]

LONG = [
    "Once upon a time, in a land far away, there lived a king who had three daughters, each more "
    "beautiful than the last; the eldest loved music, the second loved poetry, and the youngest, who "
    "was the cleverest of them all, loved nothing more than riddles, puzzles, and long walks through "
    "the forest at dawn, when the birds were singing, the dew was fresh, and the whole world seemed "
    "to be waiting for something wonderful to happen. Then the story began.",
]


def main():
    g2p = G2P()
    tts = Hibari.__new__(Hibari)          # the text methods only, without loading the ONNX model
    tts._g2p, tts.voice = g2p, "heart"
    out = {
        "reference": f"hibari-tts=={hibari.__version__} hibari.g2p.G2P(british=False)",
        "generated_by": "tools/reference/hibari_g2p_cases.py",
        "cases": [{"text": t, "phonemes": g2p(t)} for t in CASES],
        "split_sentences": [{"text": t, "sentences": Hibari.split_sentences(t)} for t in SPLIT],
        "chunks": [{"text": t, "chunks": tts.phonemize(t)} for t in LONG],
    }
    assert all(len(c) <= 400 for e in out["chunks"] for c in e["chunks"])
    assert any(len(e["chunks"]) > 1 for e in out["chunks"])
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: {len(CASES)} cases, {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
