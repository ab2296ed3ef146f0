#!/usr/bin/python3
"""Write a small DLRM safetensors file for tests, with one value poisoned on purpose.

Standard library only (runs under any python3).  The model: bottom MLP 4-8, two tables of 64
rows of dimension 8, dot interaction without self-interaction (8 + 3 features), top MLP 11-1;
every weight 0.01 * ((i % 7) - 3), so predictions are finite unless --poison says otherwise.
The matching bls-dlrm options: --arch-mlp-bot 4-8 --arch-mlp-top 1 --arch-embedding-size 64-64
--arch-sparse-feature-size 8.

Usage: write_weights.py OUT.safetensors [--poison TENSOR:INDEX:VALUE]   (VALUE nan, inf or a float)
"""
import json
import struct
import sys

SHAPES = {
    "bot_l.0.weight": [8, 4], "bot_l.0.bias": [8],
    "emb_l.0.weight": [64, 8], "emb_l.1.weight": [64, 8],
    "top_l.0.weight": [1, 11], "top_l.0.bias": [1],
}


def main(argv):
    if len(argv) not in (1, 3) or (len(argv) == 3 and argv[1] != "--poison"):
        sys.exit(__doc__)
    poison = {}
    if len(argv) == 3:
        name, index, value = argv[2].split(":")
        if name not in SHAPES:
            sys.exit(f"write_weights.py: no tensor {name!r}")
        poison[name] = (int(index), float(value))
    header, blobs, offset = {}, [], 0
    for name, shape in SHAPES.items():
        n = 1
        for s in shape:
            n *= s
        values = [0.01 * ((i % 7) - 3) for i in range(n)]
        if name in poison:
            values[poison[name][0]] = poison[name][1]
        blob = struct.pack(f"<{n}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(argv[0], "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


if __name__ == "__main__":
    main(sys.argv[1:])
