#!/usr/bin/env python3
"""The size and shape rules of the house, checked on the source (`make test` runs it).

- No source file over 800 lines and no function over 150, tests aside (a `#[cfg(test)]`
  module and everything after it, and the files in tests/, are not counted).
- No import circle between the modules of a crate: module A uses module B (a `use`, or a
  path naming B's items), B uses A, directly or through others. A module is a file; a
  folder's `mod.rs` is its own module, so helpers in `panels/mod.rs` used by `panels/x.rs`
  while `mod.rs` calls `x::ui` is a circle.

Usage: scripts/check-modules.py [--report]  (--report prints every finding and the largest
files and functions, and exits 0).
"""
import re
import sys
from pathlib import Path

MAX_FILE_LINES = 800
MAX_FN_LINES = 150
ROOT = Path(__file__).resolve().parent.parent


def strip_tests(text):
    """The file without its test module (from `#[cfg(test)]` on) and without comments."""
    m = re.search(r"^\s*#\[cfg\(test\)\]", text, re.M)
    if m:
        text = text[: m.start()]
    return text


def code_only(text):
    """Comments and string literals blanked (line breaks kept), for brace and path scans."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = '"' + hashes
            j = text.find(end, i + 2 + len(hashes))
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append('"' + re.sub(r"[^\n]", " ", text[i + 1 : j - 1]) + '"')
            i = j
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:]):
            m = re.match(r"'(\\.|[^\\'])'", text[i:])
            out.append(" " * len(m.group(0)))
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def long_functions(code):
    """(name, first line, lines) of each fn body longer than MAX_FN_LINES."""
    found = []
    for m in re.finditer(r"\bfn\s+(\w+)", code):
        start = m.start()
        # The body's opening brace: the first `{` after the signature (a `;` first: no body).
        j = start
        depth_paren = 0
        while j < len(code):
            ch = code[j]
            if ch in "([<":
                depth_paren += 1 if ch != "<" else 0
            if ch in ")]":
                depth_paren -= 1
            if ch == ";" and depth_paren == 0:
                j = -1
                break
            if ch == "{" and depth_paren == 0:
                break
            j += 1
        if j < 0 or j >= len(code):
            continue
        depth = 0
        k = j
        while k < len(code):
            if code[k] == "{":
                depth += 1
            elif code[k] == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        first = code.count("\n", 0, start) + 1
        last = code.count("\n", 0, k) + 1
        lines = last - first + 1
        if lines > MAX_FN_LINES:
            found.append((m.group(1), first, lines))
    return found


def module_files(src):
    """{module path (tuple): file} of one crate's src folder."""
    mods = {}
    for f in src.rglob("*.rs"):
        rel = f.relative_to(src).with_suffix("")
        parts = list(rel.parts)
        if parts in (["lib"], ["main"]):
            parts = []
        elif parts[-1] == "mod":
            parts = parts[:-1]
        mods[tuple(parts)] = f
    return mods


def expand_use(tree):
    """`a::{b, c::{d, e as f}}` -> [a::b, a::c::d, a::c::e] (renames dropped, `self` kept)."""
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s+", "", tree)
    m = re.match(r"^(.*?)\{(.*)\}$", tree)
    if not m:
        return [tree]
    prefix, inner = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    if cur:
        parts.append(cur)
    out = []
    for p in parts:
        for q in expand_use(p):
            out.append(prefix + q)
    return out


def resolve(here, path, mods):
    """The module a path names (as far as modules go), or None outside the crate."""
    segs = [s for s in path.split("::") if s]
    if not segs:
        return None
    if segs[0] == "crate":
        cur, segs = (), segs[1:]
    elif segs[0] in ("self", "super"):
        cur = here
        while segs and segs[0] in ("self", "super"):
            if segs[0] == "super":
                cur = cur[:-1]
            segs = segs[1:]
    elif here + (segs[0],) in mods:
        cur = here
    else:
        return None
    for s in segs:
        if cur + (s,) in mods:
            cur = cur + (s,)
        else:
            break
    return cur


def crate_graph(src):
    mods = module_files(src)
    edges = {m: set() for m in mods}
    for here, f in mods.items():
        code = code_only(strip_tests(f.read_text()))
        aliases = {}
        for m in re.finditer(r"\buse\s+([^;]+);", code):
            for p in expand_use(m.group(1)):
                target = resolve(here, p, mods)
                if target is None:
                    continue
                edges[here].add(target)
                last = p.split("::")[-1]
                if last == "self":
                    last = p.split("::")[-2]
                if target + () in mods and target and target[-1] == last:
                    aliases[last] = target
        for m in re.finditer(r"(?<![\w:])((?:crate|self|super|\w+)(?:::\w+)+)", code):
            p = m.group(1)
            first = p.split("::")[0]
            if first in aliases:
                target = resolve(aliases[first], "self::" + "::".join(p.split("::")[1:]), mods)
            else:
                target = resolve(here, p, mods)
            if target is not None:
                edges[here].add(target)
        # A module declaring its children is not a use of them; a module's own path is not.
        edges[here].discard(here)
    return mods, edges


def cycles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def main():
    report = "--report" in sys.argv
    problems = []
    sizes = []
    for src in sorted(ROOT.glob("crates/*/src")):
        crate = src.parent.name
        for f in sorted(src.rglob("*.rs")):
            text = f.read_text()
            counted = strip_tests(text)
            n = counted.count("\n")
            rel = f.relative_to(ROOT)
            sizes.append((n, str(rel)))
            if n > MAX_FILE_LINES:
                problems.append(f"{rel}: {n} lines (tests aside), more than {MAX_FILE_LINES}")
            for name, line, lines in long_functions(code_only(counted)):
                problems.append(f"{rel}:{line}: fn {name} is {lines} lines, more than {MAX_FN_LINES}")
        mods, edges = crate_graph(src)
        for comp in cycles(edges):
            names = sorted("::".join(m) or "(root)" for m in comp)
            problems.append(f"{crate}: import circle between {len(comp)} modules: {', '.join(names)}")
    for p in problems:
        print(f"check-modules: {p}", file=sys.stderr)
    if report:
        print("largest files (lines, tests aside):")
        for n, f in sorted(sizes, reverse=True)[:10]:
            print(f"  {n:5} {f}")
        return 0
    if problems:
        return 1
    print(f"check-modules: no file over {MAX_FILE_LINES} lines, no function over {MAX_FN_LINES}, no import circle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
