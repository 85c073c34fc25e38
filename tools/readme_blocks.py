#!/usr/bin/env python3
"""Compile every ```cpp block of a Markdown file (README.md), each as its own translation unit, so the code
a reader copies is code that compiles (ctest: readme_blocks). Only compiled (-fsyntax-only), never run.

    tools/readme_blocks.py --cxx g++ [--flag=-I/path ...] README.md

How a block becomes a translation unit:
  - `#include <resnet/resnet.hpp>` and `using namespace resnet;` come first unless the block has them.
  - A block with `int main(` is a whole file and compiled as it is.
  - Otherwise it is a fragment: declarations that start in column 0 with `struct`, `class`, `template`,
    `using` or `namespace` (up to their closing `};` or `}` in column 0) stay at file scope, `#include`
    lines go to the top, and every other line becomes the body of `int main()`.
Markers, an HTML comment on the line just before the opening fence (invisible on GitHub):
  <!-- readme: continues -->   the block goes on from the previous one: both compile as one unit
  <!-- readme: skip -->        not compiled (say why in the README's text)
A failure prints the unit with line numbers and the compiler's messages; the exit status is the number of
blocks that failed (0: all compiled).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

DECL = re.compile(r"^(struct|class|template|using|namespace|enum)\b")


def blocks(text):
    """(first line number, marker, code) of every ```cpp block."""
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        if lines[i].strip() == "```cpp":
            marker = ""
            m = re.match(r"\s*<!--\s*readme:\s*(\w+)\s*-->", lines[i - 1]) if i > 0 else None
            if m:
                marker = m.group(1)
            j = i + 1
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            out.append((i + 2, marker, "\n".join(lines[i + 1:j])))
            i = j
        i += 1
    return out


def unit(code):
    """The translation unit of one block (or of blocks joined by `continues`)."""
    if "int main(" in code:
        head = []
    else:
        head = None
    includes, top, body, lines, i = [], [], [], code.split("\n"), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#include"):
            includes.append(line)
        elif head is None and DECL.match(line):
            if line.startswith("using") and line.rstrip().endswith(";"):
                top.append(line)
            else:
                while i < len(lines) and not re.match(r"^\}", lines[i]):
                    top.append(lines[i])
                    i += 1
                if i < len(lines):
                    top.append(lines[i])
        elif head is None:
            body.append("  " + line if line else line)
        else:
            top.append(line)
        i += 1
    pre = []
    if "#include <resnet/resnet.hpp>" not in includes:
        pre.append("#include <resnet/resnet.hpp>")
    if not any(l.strip() == "using namespace resnet;" for l in top):
        pre.append("using namespace resnet;")
    src = includes + pre + top
    if head is None:
        src += ["int main() {"] + body + ["  return 0;", "}"]
    return "\n".join(src) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cxx", default=os.environ.get("CXX", "c++"))
    ap.add_argument("--flag", action="append", default=[], help="a compiler flag (repeat)")
    ap.add_argument("markdown")
    a = ap.parse_args()
    with open(a.markdown, encoding="utf-8") as f:
        found = blocks(f.read())
    units = []  # (first line, code)
    for line, marker, code in found:
        if marker == "skip":
            continue
        if marker == "continues" and units:
            units[-1] = (units[-1][0], units[-1][1] + "\n" + code)
        else:
            units.append((line, code))
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for line, code in units:
            src = unit(code)
            path = os.path.join(tmp, "readme_line%d.cpp" % line)
            with open(path, "w") as f:
                f.write(src)
            cmd = [a.cxx, "-std=c++17", "-fsyntax-only", "-w"] + a.flag + [path]
            r = subprocess.run(cmd, capture_output=True, text=True)
            name = "%s:%d" % (a.markdown, line)
            if r.returncode == 0:
                print("compiles: " + name)
                continue
            failed += 1
            print("DOES NOT COMPILE: " + name + "\n--- the unit:")
            for n, l in enumerate(src.split("\n"), 1):
                print("%4d  %s" % (n, l))
            print("--- the compiler:\n" + r.stdout + r.stderr)
    print("%d of %d README blocks compile (%d skipped)" %
          (len(units) - failed, len(units), sum(1 for b in found if b[1] == "skip")))
    return failed


if __name__ == "__main__":
    sys.exit(main())
