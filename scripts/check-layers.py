#!/usr/bin/env python3
"""Checks the library's layering (docs/architecture.md): a file of a layer includes sdgen
headers of its own layer and of the layers before it only, and no private header of another
layer (src/<layer>/*.h). Prints each violation as file:line and exits 1 when there is one."""
import pathlib
import re
import sys

# Lowest first: each layer may include the ones before it.
ORDER = ["util", "io", "text", "data", "models", "sampling", "job", "loading", "pipeline"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(path, root):
    rel = path.relative_to(root).parts
    if rel[0] == "include" and len(rel) > 2:
        return rel[2]
    if rel[0] == "src" and len(rel) > 1:
        return rel[1]
    return None


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    problems = []
    files = list((root / "include" / "sdgen").rglob("*.h")) + [
        p for p in (root / "src").rglob("*") if p.suffix in (".h", ".cpp", ".cu", ".inc")
    ]
    for path in sorted(files):
        layer = layer_of(path, root)
        if layer not in ORDER:
            continue  # cli, tools, train, spm, cuda: programs and shims over the library
        allowed = set(ORDER[: ORDER.index(layer) + 1])
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            target = m.group(1).split("/")
            where = f"{path.relative_to(root)}:{number}"
            if target[0] == "sdgen" and len(target) > 2 and target[1] not in allowed:
                problems.append(f"{where}: layer {layer} includes {m.group(1)} (a later layer)")
            elif target[0] in ORDER and target[0] != layer:
                problems.append(f"{where}: layer {layer} includes {m.group(1)}, a private "
                                f"header of layer {target[0]}")
    for p in problems:
        print(p)
    print(f"check-layers: {len(files)} files, {len(problems)} violations")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
