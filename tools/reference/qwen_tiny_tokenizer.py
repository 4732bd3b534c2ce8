"""A small Qwen-style tokenizer.json for the tiny Qwen2.5-Omni checkpoint tiny_a (vocabulary 384),
so parley's Qwen session (thinker/src/qwen/session.rs) runs real text through a real tokenizer in
tests.

Like Qwen's: byte-level BPE (GPT-2 byte alphabet, ByteLevel pre-tokenizer and decoder) and the
added special tokens by their published names, at the ids tiny_a's config.json gives them:
  0..369    byte-level BPE trained here on a few English sentences (tokenizers 0.23.3)
  370..380  <|endoftext|> <|im_start|> <|im_end|> <|vision_pad|> <|AUDIO|> <|audio_bos|>
            <|audio_eos|> <|IMAGE|> <|VIDEO|> <|vision_bos|> <|vision_eos|>
            (tiny_a: audio_token_index 374, audio_start 375, audio_end 376, image 377, video 378,
            vision_start 379, vision_end 380)

Writes assets/goldens/qwen/tiny_a/checkpoint/tokenizer.json (deterministic).

    .venv/bin/python tools/reference/qwen_tiny_tokenizer.py
"""

import json

import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

assert tokenizers.__version__ == "0.23.3", tokenizers.__version__

OUT = "assets/goldens/qwen/tiny_a/checkpoint/tokenizer.json"
BPE_SIZE = 370
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_pad|>", "<|AUDIO|>",
            "<|audio_bos|>", "<|audio_eos|>", "<|IMAGE|>", "<|VIDEO|>", "<|vision_bos|>",
            "<|vision_eos|>"]
CORPUS = [
    "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of "
    "perceiving auditory and visual inputs, as well as generating text and speech.",
    "What is the capital of France? The capital of France is Paris.",
    "Why is the ocean salty? Rivers carry minerals into the sea.",
    "How many legs does a spider have? A spider has eight legs.",
    "Tell me a joke. Why did the robot go on holiday? It needed to recharge.",
    "What is the weather like today? It is sunny and warm with a light breeze.",
    "Turn on the kitchen lights, please. Sure, the kitchen lights are on now.",
    "system user assistant hello hi thanks okay yes no maybe",
] * 20


def main():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=BPE_SIZE, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    assert tok.get_vocab_size() == BPE_SIZE, tok.get_vocab_size()
    tok.add_special_tokens(SPECIALS)
    for i, s in enumerate(SPECIALS):
        assert tok.token_to_id(s) == BPE_SIZE + i, s
    config = json.load(open("assets/goldens/qwen/tiny_a/checkpoint/config.json"))["thinker_config"]
    assert tok.token_to_id("<|AUDIO|>") == config["audio_token_index"]
    assert tok.token_to_id("<|audio_bos|>") == config["audio_start_token_id"]
    assert tok.token_to_id("<|audio_eos|>") == config["audio_end_token_id"]
    tok.save(OUT)
    print("wrote", OUT, tok.encode("<|im_start|>user\nWhat is the capital of France?<|im_end|>").ids)


if __name__ == "__main__":
    main()
