#!/usr/bin/env python3
"""Reference fixtures for the TarFlow state_dict importer (tests/InteropTests.fs).

An independent PyTorch statement of the TarFlow data-to-noise map (docs/METHOD.md section 1), written as plain
functions over a state_dict keyed the way ml-tarflow's transformer_flow.Model names its tensors. For each
configuration it draws a small random model (output projections NON-zero, so no block is the identity), saves its
state_dict with torch.save (.pt) and as .safetensors (written here: the format is an 8-byte little-endian header
length, a JSON header, raw little-endian data), an input batch, and the reference outputs of encode:
z as tokens [N, T, d] (what ml-tarflow's Model.forward returns) and the total log|det| [N] in nats, both computed
in float64 from the float32 weights.

    python3 scripts/make-tarflow-fixture.py [OUT_DIR]          # default tests/fixtures/tarflow
    python3 scripts/make-tarflow-fixture.py --check FILE X.npy Z.npy [LABELS.npy] --head-dim H --patch P
        # encodes X with the state_dict FILE (.pt or .safetensors) and reports the largest difference from Z
        # (tokens or image layout); used to check that a file exported by `nfm teacher export` encodes the same here.

Needs torch and numpy (Debian 12: apt-get install python3-torch python3-numpy).
"""
import json
import math
import os
import struct
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F


# ---- the flow, as functions of a state_dict ---------------------------------------------------------------------

def to_tokens(images, patch):
    """[N, C, H, W] -> [N, T, C p^2], patches row by row, each patch channel-major (an unfold with stride p)."""
    return F.unfold(images, patch, stride=patch).transpose(1, 2)


def layer_norm(h, sd, name):
    return F.layer_norm(h, (h.shape[-1],), sd[name + ".weight"], sd[name + ".bias"], eps=1e-5)


def linear(h, sd, name):
    return F.linear(h, sd[name + ".weight"], sd[name + ".bias"])


def causal_attention(h, sd, name, head_dim):
    n, t, c = h.shape
    heads = c // head_dim
    # The qkv output holds 3 * heads groups of head_dim values: queries, then keys, then values.
    q, k, v = linear(layer_norm(h, sd, name + ".norm"), sd, name + ".qkv").view(n, t, 3, heads, head_dim).unbind(2)
    scores = torch.einsum("nqhd,nkhd->nhqk", q, k) / math.sqrt(head_dim)
    allowed = torch.ones(t, t, dtype=torch.bool).tril()
    weights = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
    mixed = torch.einsum("nhqk,nkhd->nqhd", weights, v).reshape(n, t, c)
    return linear(mixed, sd, name + ".proj")


def mlp(h, sd, name):
    u = layer_norm(h, sd, name + ".norm")
    return linear(F.gelu(linear(u, sd, name + ".main.0")), sd, name + ".main.2")


def block_count(sd):
    return 1 + max(int(key.split(".")[1]) for key in sd if key.startswith("blocks."))


def layer_count(sd, k):
    prefix = f"blocks.{k}.attn_blocks."
    return 1 + max(int(key[len(prefix):].split(".")[0]) for key in sd if key.startswith(prefix))


def encode_tokens(sd, tokens, labels, head_dim):
    """Data tokens [N, T, d] -> (z tokens [N, T, d], total log|det| [N] in nats)."""
    d = tokens.shape[-1]
    logdet = torch.zeros(tokens.shape[0], dtype=tokens.dtype)
    for k in range(block_count(sd)):
        p = f"blocks.{k}."
        reverse = k % 2 == 1          # odd blocks read the tokens back to front
        seq = tokens.flip(1) if reverse else tokens
        pos = sd[p + "pos_embed"]
        h = linear(seq, sd, p + "proj_in") + (pos.flip(0) if reverse else pos)
        if p + "class_embed" in sd:
            table = sd[p + "class_embed"][:, 0, :]
            if labels is None:
                h = h + table.mean(0)
            else:
                rows = table[labels.clamp(min=0)]
                rows = torch.where((labels < 0)[:, None], table.mean(0)[None, :], rows)
                h = h + rows[:, None, :]
        for l in range(layer_count(sd, k)):
            h = h + causal_attention(h, sd, f"{p}attn_blocks.{l}.attention", head_dim)
            h = h + mlp(h, sd, f"{p}attn_blocks.{l}.mlp")
        out = linear(h, sd, p + "proj_out")
        out = torch.cat([torch.zeros_like(out[:, :1]), out[:, :-1]], 1)   # token t sees only tokens < t
        if out.shape[-1] == 2 * d:
            a, b = out[..., :d], out[..., d:]
        else:
            a, b = torch.zeros_like(out), out
        z = (seq - b) * torch.exp(-a)
        tokens = z.flip(1) if reverse else z
        logdet = logdet - a.sum((1, 2))
    return tokens, logdet


# ---- files ------------------------------------------------------------------------------------------------------

SAFETENSORS_DTYPES = {torch.float32: ("F32", "<f4"), torch.float64: ("F64", "<f8"), torch.int64: ("I64", "<i8")}
SAFETENSORS_BACK = {"F32": (np.float32, torch.float32), "F64": (np.float64, torch.float64), "I64": (np.int64, torch.int64),
                    "F16": (np.float16, torch.float16)}


def write_safetensors(path, sd):
    header, chunks, offset = {}, [], 0
    for name, t in sd.items():
        code, np_dtype = SAFETENSORS_DTYPES[t.dtype]
        data = t.detach().contiguous().numpy().astype(np_dtype).tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)


def read_safetensors(path):
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        data = f.read()
    sd = OrderedDict()
    for name, info in header.items():
        if name == "__metadata__":
            continue
        np_dtype, _ = SAFETENSORS_BACK[info["dtype"]]
        begin, end = info["data_offsets"]
        sd[name] = torch.from_numpy(np.frombuffer(data[begin:end], dtype=np_dtype).reshape(info["shape"]).copy())
    return sd


def read_state_dict(path):
    return read_safetensors(path) if path.endswith(".safetensors") else torch.load(path, map_location="cpu")


# ---- random models ----------------------------------------------------------------------------------------------

def random_state_dict(gen, channels, image, patch, width, blocks, layers, expansion=4, affine=True, classes=0,
                      learned_var=False):
    """A state_dict in ml-tarflow's layout with every weight drawn at random (output projections included)."""
    tokens, d = (image // patch) ** 2, channels * patch * patch

    def uniform(*shape, fan_in):
        bound = 1 / math.sqrt(fan_in)
        return (torch.rand(*shape, generator=gen) * 2 - 1) * bound

    def normal(*shape, std):
        return torch.randn(*shape, generator=gen) * std

    sd = OrderedDict()
    for k in range(blocks):
        p = f"blocks.{k}."
        sd[p + "pos_embed"] = normal(tokens, width, std=0.3)
        if classes:
            sd[p + "class_embed"] = normal(classes, 1, width, std=0.3)
        sd[p + "proj_in.weight"] = uniform(width, d, fan_in=d)
        sd[p + "proj_in.bias"] = uniform(width, fan_in=d)
        for l in range(layers):
            q = f"{p}attn_blocks.{l}."
            for norm in ("attention.norm", "mlp.norm"):
                sd[q + norm + ".weight"] = 1 + normal(width, std=0.1)
                sd[q + norm + ".bias"] = normal(width, std=0.1)
            sd[q + "attention.qkv.weight"] = uniform(3 * width, width, fan_in=width)
            sd[q + "attention.qkv.bias"] = uniform(3 * width, fan_in=width)
            sd[q + "attention.proj.weight"] = uniform(width, width, fan_in=width)
            sd[q + "attention.proj.bias"] = uniform(width, fan_in=width)
            sd[q + "mlp.main.0.weight"] = uniform(expansion * width, width, fan_in=width)
            sd[q + "mlp.main.0.bias"] = uniform(expansion * width, fan_in=width)
            sd[q + "mlp.main.2.weight"] = uniform(width, expansion * width, fan_in=expansion * width)
            sd[q + "mlp.main.2.bias"] = uniform(width, fan_in=expansion * width)
        out = 2 * d if affine else d
        # Non-zero and small: a and b of order 0.1 to 1, so every block moves the data but stays well conditioned.
        sd[p + "proj_out.weight"] = normal(out, width, std=0.5 / math.sqrt(width))
        sd[p + "proj_out.bias"] = normal(out, std=0.1)
        sd[p + "attn_mask"] = torch.ones(tokens, tokens).tril()
    sd["var"] = (0.5 + torch.rand(tokens, d, generator=gen)) if learned_var else torch.ones(tokens, d)
    return sd


CONFIGS = {
    # name: (state_dict arguments, head_dim, batch, labelled)
    "image": (dict(channels=1, image=8, patch=2, width=64, blocks=2, layers=2), 32, 4, False),
    "conditional": (dict(channels=3, image=4, patch=2, width=32, blocks=3, layers=1, classes=3, learned_var=True), 16, 5, True),
    "shift": (dict(channels=1, image=4, patch=2, width=16, blocks=2, layers=1, affine=False), 8, 3, False),
}


def make(out_dir):
    for seed, (name, (args, head_dim, batch, labelled)) in enumerate(CONFIGS.items()):
        gen = torch.Generator().manual_seed(1000 + seed)
        sd = random_state_dict(gen, **args)
        folder = os.path.join(out_dir, name)
        os.makedirs(folder, exist_ok=True)
        torch.save(sd, os.path.join(folder, "model.pt"))
        write_safetensors(os.path.join(folder, "model.safetensors"), sd)
        x = (torch.randn(batch, args["channels"], args["image"], args["image"], generator=gen) * 0.7).float()
        labels = torch.tensor([0, 2, -1, 1, 2][:batch], dtype=torch.int64) if labelled else None
        sd64 = {k: v.double() for k, v in sd.items()}
        z, logdet = encode_tokens(sd64, to_tokens(x.double(), args["patch"]), labels, head_dim)
        np.save(os.path.join(folder, "x.npy"), x.numpy())
        np.save(os.path.join(folder, "z_tokens.npy"), z.numpy())
        np.save(os.path.join(folder, "logdet.npy"), logdet.numpy())
        if labels is not None:
            np.save(os.path.join(folder, "labels.npy"), labels.numpy())
        options = {"image_size": args["image"], "channels": args["channels"], "patch_size": args["patch"],
                   "head_dim": head_dim, "width": args["width"], "blocks": args["blocks"], "layers": args["layers"],
                   "affine": args.get("affine", True), "classes": args.get("classes", 0),
                   "torch": torch.__version__, "max_abs_z": float(z.abs().max()), "logdet": logdet.tolist()}
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(options, f, indent=2)
        print(f"{name}: {len(sd)} tensors, z max |.| {z.abs().max():.3f}, logdet {[round(v, 3) for v in logdet.tolist()]}")


def check(argv):
    """--check FILE X.npy Z.npy [LABELS.npy] --head-dim H --patch P: largest |encode(X) - Z| under FILE's weights."""
    head_dim = int(argv[argv.index("--head-dim") + 1])
    patch = int(argv[argv.index("--patch") + 1])
    files = [a for i, a in enumerate(argv) if not a.startswith("--") and (i == 0 or not argv[i - 1].startswith("--"))]
    path, x_path, z_path = files[:3]
    labels = torch.from_numpy(np.load(files[3])) if len(files) > 3 else None
    sd = {k: v.double() for k, v in read_state_dict(path).items()}
    x = torch.from_numpy(np.load(x_path)).double()
    expected = torch.from_numpy(np.load(z_path)).double()
    z, logdet = encode_tokens(sd, to_tokens(x, patch) if x.dim() == 4 else x.reshape(x.shape[0], -1, patch), labels, head_dim)
    if expected.shape != z.shape:
        expected = to_tokens(expected, patch) if expected.dim() == 4 else expected.reshape(z.shape)
    print(json.dumps({"max_abs_diff": float((z - expected).abs().max()), "max_abs_z": float(z.abs().max()),
                      "logdet": logdet.tolist()}))


if __name__ == "__main__":
    if "--check" in sys.argv:
        check([a for a in sys.argv[1:] if a != "--check"])
    else:
        make(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "tarflow"))
