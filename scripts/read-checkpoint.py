#!/usr/bin/env python3
"""Lists an nfm checkpoint (or any .safetensors file) and verifies its checksums, with the standard library only.

    python3 scripts/read-checkpoint.py teacher.ckpt          # kind, metadata, one line per tensor
    python3 scripts/read-checkpoint.py teacher.ckpt --json   # the same as JSON (tests read this)

Exit status 1 when a checksum does not match or the file's length is not the one its header describes.
With numpy and safetensors installed, `safetensors.safe_open(path, "np")` loads the tensors themselves.
"""
import hashlib
import json
import struct
import sys


def read_header(f):
    (n,) = struct.unpack("<Q", f.read(8))
    raw = f.read(n)
    header = json.loads(raw)
    meta = header.pop("__metadata__", {})
    return raw, meta, header


def main(path, as_json):
    with open(path, "rb") as f:
        raw, meta, tensors = read_header(f)
        data = hashlib.sha256()
        length = 0
        for chunk in iter(lambda: f.read(1 << 20), b""):
            data.update(chunk)
            length += len(chunk)
    problems = []
    end = max((t["data_offsets"][1] for t in tensors.values()), default=0)
    if end != length:
        problems.append(f"the header describes {end} data bytes, the file has {length}")
    if "nfm.data_sha256" in meta and data.hexdigest() != meta["nfm.data_sha256"]:
        problems.append("SHA-256 mismatch in the tensor data")
    sealed = meta.get("nfm.header_sha256")
    if sealed and hashlib.sha256(raw.replace(sealed.encode(), b"0" * 64)).hexdigest() != sealed:
        problems.append("SHA-256 mismatch in the header")
    if as_json:
        print(json.dumps({"metadata": meta, "tensors": tensors, "problems": problems}))
    else:
        print(f"{path}: {meta.get('nfm.kind', 'safetensors')} (format {meta.get('nfm.format_version', '-')})")
        for key, value in meta.items():
            if key != "nfm.description":
                print(f"  {key} = {value}")
        for name, t in sorted(tensors.items(), key=lambda kv: kv[1]["data_offsets"][0]):
            print(f"  {name}: {t['dtype']} {t['shape']}")
        for p in problems:
            print(f"  problem: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--json"]
    if len(args) != 1:
        sys.exit(__doc__)
    sys.exit(main(args[0], "--json" in sys.argv[1:]))
