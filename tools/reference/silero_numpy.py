"""Silero VAD 16 kHz in plain numpy: the executable spec the Rust port follows (docs/silero_port.md).

WEIGHTS: take them from the wheel's silero_vad/data/silero_vad_16k_op15.onnx (`onnx_weights`), NOT from
silero_vad_16k.safetensors. The safetensors in silero-vad 6.2.3 holds a different (older) checkpoint
than every ONNX export in the same wheel: same architecture, but probabilities differ by up to 0.32.
silero_goldens.py asserts this code with the ONNX weights matches onnxruntime within 1e-4 per window.

    .venv/bin/python tools/reference/silero_numpy.py export OUT.safetensors   # ONNX weights, tinygrad names

One step consumes one 512-sample window (32 ms at 16 kHz) and carries (context, h, c):
    x    = context(64) ++ window(512)                    576 samples; context starts as 64 zeros
    x    = reflect_pad_right(x, 64)                      640 samples: x[576+k] = x[574-k], k = 0..63
    s    = conv1d(x, stft_conv.weight[258,1,256], stride 128, no padding, no bias)   -> [258, 4]
    mag  = sqrt(s[0:129]^2 + s[129:258]^2)               -> [129, 4]  (real rows, then imaginary rows)
    y    = relu(conv1d(mag, conv1, k3, stride 1, pad 1)) -> [128, 4]
    y    = relu(conv1d(y,   conv2, k3, stride 2, pad 1)) -> [64, 2]
    y    = relu(conv1d(y,   conv3, k3, stride 2, pad 1)) -> [64, 1]
    y    = relu(conv1d(y,   conv4, k3, stride 1, pad 1)) -> [128, 1]  -> vector u[128]
    g    = W_ih u + b_ih + W_hh h + b_hh                 [512] = gates in PyTorch order i | f | g | o
    c'   = sigmoid(f) * c + sigmoid(i) * tanh(g);  h' = sigmoid(o) * tanh(c')
    p    = sigmoid(final_conv.weight[0,:,0] . relu(h') + final_conv.bias[0])    (mean over 1 frame)
    context' = x[512:576] (the last 64 input samples before padding)
"""
import numpy as np

WINDOW, CONTEXT, PAD, HOP, N_FFT = 512, 64, 64, 128, 256


# tinygrad / safetensors name -> initializer name in silero_vad_16k_op15.onnx (all float32, raw_data)
ONNX_NAMES = {
    "stft_conv.weight": "model.stft.forward_basis_buffer",
    **{f"conv{i + 1}.{p}": f"model.encoder.{i}.reparam_conv.{p}" for i in range(4) for p in ("weight", "bias")},
    **{f"lstm_cell.{p}": f"model.decoder.rnn.{p}" for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")},
    "final_conv.weight": "model.decoder.decoder.2.weight",
    "final_conv.bias": "model.decoder.decoder.2.bias",
}


def load_weights(path):
    """The wheel's safetensors (tinygrad names). Kept for comparison only: see the module docstring."""
    from safetensors.numpy import load_file
    return {k: v.astype(np.float32) for k, v in load_file(path).items()}


def onnx_weights(path):
    """Weights of silero_vad_16k_op15.onnx under the tinygrad names (what the port must load)."""
    import onnx
    from onnx import numpy_helper
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
    return {k: inits[v].astype(np.float32) for k, v in ONNX_NAMES.items()}


def conv1d(x, w, b, stride, pad):
    """x [Cin, T], w [Cout, Cin, K], zero padding on both sides -> [Cout, Tout]."""
    cout, cin, k = w.shape
    xp = np.pad(x, ((0, 0), (pad, pad)))
    tout = (xp.shape[1] - k) // stride + 1
    cols = np.stack([xp[:, t * stride: t * stride + k] for t in range(tout)], axis=0)    # [Tout, Cin, K]
    y = np.einsum("tck,ock->ot", cols, w, dtype=np.float32)
    return y + b[:, None] if b is not None else y


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class SileroNumpy:
    def __init__(self, weights):
        self.w = weights
        self.reset()

    def reset(self):
        self.context = np.zeros(CONTEXT, np.float32)
        self.h = np.zeros(128, np.float32)
        self.c = np.zeros(128, np.float32)

    def step(self, window):
        """One 512-sample window -> speech probability; updates context and LSTM state."""
        w = self.w
        assert window.shape == (WINDOW,)
        x = np.concatenate([self.context, window.astype(np.float32)])
        self.context = x[-CONTEXT:].copy()
        x = np.pad(x, (0, PAD), mode="reflect")
        s = conv1d(x[None], w["stft_conv.weight"], None, HOP, 0)
        mag = np.sqrt(s[:129] ** 2 + s[129:] ** 2)
        y = np.maximum(conv1d(mag, w["conv1.weight"], w["conv1.bias"], 1, 1), 0)
        y = np.maximum(conv1d(y, w["conv2.weight"], w["conv2.bias"], 2, 1), 0)
        y = np.maximum(conv1d(y, w["conv3.weight"], w["conv3.bias"], 2, 1), 0)
        y = np.maximum(conv1d(y, w["conv4.weight"], w["conv4.bias"], 1, 1), 0)
        u = y[:, 0]
        g = w["lstm_cell.weight_ih"] @ u + w["lstm_cell.bias_ih"] + w["lstm_cell.weight_hh"] @ self.h + w["lstm_cell.bias_hh"]
        gi, gf, gg, go = np.split(g, 4)
        self.c = sigmoid(gf) * self.c + sigmoid(gi) * np.tanh(gg)
        self.h = sigmoid(go) * np.tanh(self.c)
        logit = w["final_conv.weight"][0, :, 0] @ np.maximum(self.h, 0) + w["final_conv.bias"][0]
        return float(sigmoid(logit))


def windows(audio):
    """The package's framing: zero-pad the end to a multiple of 512, then consecutive windows."""
    n = -(-len(audio) // WINDOW) * WINDOW
    x = np.zeros(n, np.float32)
    x[: len(audio)] = audio
    return x.reshape(-1, WINDOW)


def data_dir():
    import importlib.util
    import os
    spec = importlib.util.find_spec("silero_vad")          # locating the package does not import torch
    return os.path.join(os.path.dirname(spec.origin), "data")


if __name__ == "__main__":
    import os
    import sys
    if len(sys.argv) != 3 or sys.argv[1] != "export":
        sys.exit("usage: silero_numpy.py export OUT.safetensors")
    from safetensors.numpy import save_file
    save_file(onnx_weights(os.path.join(data_dir(), "silero_vad_16k_op15.onnx")), sys.argv[2])
