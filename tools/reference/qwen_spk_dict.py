"""A small `spk_dict.pt` in the layout of the Qwen2.5-Omni checkpoints, and the same values as
safetensors, to test parley's reader of the torch pickle (talker/src/qwen/speakers.rs).

The published file is `torch.save` of {name: {"bos_token": int, "cond": Tensor [1, 192],
"ref_mel": Tensor [1, T, 80]}} for "Chelsie" and "Ethan" (../shared/docs/qwen2_5_omni.md §4.6).
Here T is 12 (the real ones hold a few hundred frames) and the values are random.

Writes assets/goldens/qwen_speakers/{spk_dict.pt, expected.safetensors} (`<name>.cond`,
`<name>.ref_mel`, `<name>.bos_token` i64 [1]).

    .venv/bin/python tools/reference/qwen_spk_dict.py
"""

import os

import torch
from safetensors.torch import save_file

OUT = "assets/goldens/qwen_speakers"
# The published speakers' text-BOS ids (doc §4.3).
SPEAKERS = {"Chelsie": 151872, "Ethan": 151870}

gen = torch.Generator().manual_seed(7)
spk_dict, flat = {}, {}
for name, bos in SPEAKERS.items():
    cond = torch.randn(1, 192, generator=gen)
    ref_mel = torch.randn(1, 12, 80, generator=gen)
    spk_dict[name] = {"bos_token": bos, "cond": cond, "ref_mel": ref_mel}
    flat[f"{name}.cond"] = cond
    flat[f"{name}.ref_mel"] = ref_mel
    flat[f"{name}.bos_token"] = torch.tensor([bos], dtype=torch.int64)
os.makedirs(OUT, exist_ok=True)
torch.save(spk_dict, os.path.join(OUT, "spk_dict.pt"))
save_file(flat, os.path.join(OUT, "expected.safetensors"))
print("wrote", OUT)
