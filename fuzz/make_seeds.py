#!/usr/bin/env python3
"""Regenerates the committed seed corpora in fuzz/corpus/ (standard library only).

The seeds are tiny valid inputs: libFuzzer mutates them, so every parser branch that a valid
file reaches is a few mutations away. Usage: fuzz/make_seeds.py [OWF]  (overwrites the seed files). The packed-container seeds
(corpus/packed/) are written by `OWF quantise` (e.g. build/owf) and only when OWF is given.
Files named regress_* are inputs the fuzzers once crashed on, kept as regression seeds; this
script leaves them alone.
"""
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    assert len(data) < 4096, (name, len(data))
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- .npy --------------------------------------------------------------------------------
def npy(descr, shape, payload, version=(1, 0), fortran=False):
    shape_text = "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
    header = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape_text}, }}"
    len_bytes = 2 if version[0] == 1 else 4
    pre = 6 + 2 + len_bytes
    total = pre + len(header) + 1
    header += " " * ((-total) % 64) + "\n"
    head = b"\x93NUMPY" + bytes(version)
    head += struct.pack("<H" if len_bytes == 2 else "<I", len(header))
    enc = "latin1" if version[0] < 3 else "utf8"
    return head + header.encode(enc) + payload


write("npy", "f32_2x3.npy", npy("<f4", (2, 3), struct.pack("<6f", 0, -1.5, 2, 3.25, -0.0, 1e-3)))
write("npy", "f16_4.npy", npy("<f2", (4,), struct.pack("<4H", 0x3C00, 0xBC00, 0x7BFF, 0x0001)))
write("npy", "f64_scalar_v2.npy", npy("<f8", (), struct.pack("<d", 3.5e38), version=(2, 0)))
write("npy", "f32_empty_v3.npy", npy("<f4", (0, 3), b"", version=(3, 0)))

# --- safetensors -------------------------------------------------------------------------
def safetensors(tensors, metadata=None):
    header, data = {}, b""
    for name, dtype, shape, payload in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + data


write("safetensors", "mixed.safetensors", safetensors(
    [("w.f32", "F32", (2, 2), struct.pack("<4f", 1, -2, 0.5, 0)),
     ("w.bf16", "BF16", (3,), struct.pack("<3H", 0x3F80, 0xC000, 0x7F80)),
     ("w.f16", "F16", (1, 2), struct.pack("<2H", 0x3C00, 0x8000)),
     ("ids", "I64", (2,), struct.pack("<2q", 7, -1)),
     ("empty", "F32", (0, 4), b"")],
    {"format": "pt", "note": "owf fuzz seed"}))
write("safetensors", "one.safetensors", safetensors([("x", "F32", (1,), struct.pack("<f", 1.0))]))

# --- GGUF v3 -----------------------------------------------------------------------------
def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf(kvs, tensors, version=3, alignment=32):
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for key, vtype, value in kvs:
        out += gstr(key) + struct.pack("<I", vtype) + value
    data = b""
    for name, dims, ggml_type, payload in tensors:  # dims innermost first (ne[])
        data += b"\0" * ((-len(data)) % alignment)
        out += gstr(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        out += struct.pack("<IQ", ggml_type, len(data))
        data += payload
    out += b"\0" * ((-len(out)) % alignment)
    return out + data


kvs = [
    ("general.architecture", 8, gstr("llama")),
    ("general.alignment", 4, struct.pack("<I", 32)),
    ("llama.context_length", 4, struct.pack("<I", 128)),
    ("llama.rope.freq_base", 6, struct.pack("<f", 10000.0)),
    ("general.flag", 7, b"\x01"),
    ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 3) + gstr("<s>") + gstr("a") + gstr("\u00e9")),
    ("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, 3) + struct.pack("<3f", 0, -1, -2)),
    ("tokenizer.ggml.token_type", 9, struct.pack("<IQ", 5, 3) + struct.pack("<3i", 1, 2, 3)),
    ("nested", 9, struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 0, 2) + b"\x01\x02"),
    ("i64", 11, struct.pack("<q", -5)), ("f64", 12, struct.pack("<d", 0.25)),
]
tensors = [
    ("tok.weight", (3, 2), 0, struct.pack("<6f", 1, 2, 3, -4, 0.5, 0)),  # F32, 2 rows x 3
    ("norm.f16", (4,), 1, struct.pack("<4H", 0x3C00, 0xC000, 0x7C00, 0)),
    ("out.bf16", (2, 1), 30, struct.pack("<2H", 0x3F80, 0xBF80)),
    ("q.weight", (32,), 2, b"\x00\x3c" + bytes(range(16))),  # Q4_0: one block, not readable
    ("ids.i32", (2,), 26, struct.pack("<2i", 1, -1)),
]
write("gguf", "tiny_v3.gguf", gguf(kvs, tensors))
write("gguf", "min_v2.gguf", gguf([("general.architecture", 8, gstr("x"))],
                                  [("t", (1,), 0, struct.pack("<f", 1))], version=2))

# --- format specs (one per file: each file is one fuzzer input) --------------------------
SPECS = [
    "crd4(t,df=7)@64:absmax:bf16",
    "nf4@64:absmax",
    "e2m1@32:absmax:e8m0+outliers(0.001,bf16)",
    "grid(3.5)@tensor:absmax+entropy(ideal)",
    "int4(sym)@channel:signmax:fp16+search",
    "e4m3(rz)@16x16:rms:e4m3",
    "lut(-1,-0.5,0,0.5,1)@128:absmax:fp32",
    "crd3(laplace,mode=asym,power=0.5)@8:absmax:e4m3",
    "crd4(t)@64:absmax+search",
    "lloyd3.5@tensor:rms",
    "sf4@32:absmax+outliers(0.01,fp32)",
    "bf16",
    "nf4@64:absmax+rotate(hadamard,7)",
]
for i, s in enumerate(SPECS):
    write("spec", f"spec{i:02d}.txt", s)

# --- owf packed containers (made by the owf binary from a tiny model) ---------------------
if len(sys.argv) > 1:
    owf = os.path.abspath(sys.argv[1])
    rng = random.Random(1)
    model = safetensors(
        [("a.weight", "F32", (2, 64), struct.pack("<128f", *[rng.gauss(0, 1) for _ in range(128)])),
         ("b.weight", "F32", (3, 40), struct.pack("<120f", *[rng.gauss(0, 1) for _ in range(120)])),
         ("norm", "F32", (4,), struct.pack("<4f", 1, 1, 1, 1))])
    rules = {
        "codes.owf": {"default": "nf4@32:absmax+outliers(0.02,bf16)", "b.*": "e2m1@16:absmax:e8m0"},
        "cast.owf": {"default": "bf16", "b.*": "int2.33@channel:signmax:fp16", "norm": "keep"},
    }
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "model.safetensors")
        with open(src, "wb") as f:
            f.write(model)
        for name, r in rules.items():
            rules_path = os.path.join(tmp, "rules.json")
            with open(rules_path, "w") as f:
                json.dump(r, f)
            out = os.path.join(tmp, name)
            subprocess.run([owf, "quantise", src, "--rules", rules_path, "-o", out], check=True,
                           stdout=subprocess.DEVNULL)
            with open(out, "rb") as f:
                write("packed", name, f.read())
