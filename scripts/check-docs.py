#!/usr/bin/env python3
"""Checks the C++ code blocks of README.md and docs/*.md: they compile, and some run.

Every fenced block tagged ```cpp is checked. On its own it is one whole translation unit. An
HTML comment on the line right above the fence (invisible when the page is rendered) says
otherwise:

    <!-- check: WORD WORD ... -->
    ```cpp

  id=NAME     names the block, so that later blocks of the same page can continue it.
  after=NAME  the block continues block NAME of the same page: it is compiled after NAME's code
              (and after whatever NAME itself continues). A block that others continue is
              compiled only as part of them.
  main        the block is statements: they become the body of `int main()` (which then
              returns 0); the #include lines at its top stay at file scope.
  run         the program is linked and run from the repository root; it must exit with 0.
  skip        a fragment that cannot compile on its own (one line of a type, ...): not checked.
  fail        an example of a compile error: it must fail to compile with an inn static_assert
              (`static assertion failed: inn: ...`).

A block of another language (```sh, ```text, ```cmake, or none) is never compiled; a marker above
one is an error, as is an unknown word, an unknown NAME, or a NAME given twice on one page.

Compiler messages point into the Markdown page (the generated source carries #line directives).
Generated sources and programs are kept in the work directory (--work).

Usage (CMake registers one ctest test per checked block, and `docs.links`; label `docs`):

    scripts/check-docs.py --list [PAGE...]          one line PAGE:LINE per checked block
    scripts/check-docs.py [-j N] [PAGE[:LINE]...]   check all blocks, or the block at LINE
    scripts/check-docs.py --links                   check the links to anchors (below)

--links checks that every `PAGE.md#anchor` written in include/, tests/, examples/, benchmarks/,
docs/ and README.md (code comments included, e.g. docs/freia-semantics.md#actnorm-nan-init), and
every `(#anchor)` link of a page, names a page that exists and an anchor on it: an explicit
`<a id="...">` or a heading (GitHub's rule: lower case, punctuation dropped, spaces to '-').
It also refuses citations of the FrEIA reference document that is not part of the repository
("spec §8.17", "freia-reference.md"): cite an entry of docs/freia-semantics.md instead.

PAGE defaults to README.md and docs/*.md. The compiler and its flags are those of the CMake
target inn_docs_check_flags, read from compile_commands.json (--compile-commands, default
build/compile_commands.json; configure build/ first). Python 3.8+, standard library only.
"""

import argparse
import concurrent.futures
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CPP_TAGS = {"cpp", "c++", "cxx"}
WORDS = {"main", "run", "skip", "fail"}
COMPILE_TIMEOUT_S = 600
RUN_TIMEOUT_S = 120
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^\s`]*)(.*)$")
MARKER = re.compile(r"^\s*<!--\s*check:(.*?)-->\s*$")


class DocError(Exception):
    """A page's markers are inconsistent (reported with page and line)."""


@dataclass
class Block:
    page: Path
    line: int  # line of the opening fence (1-based)
    lang: str
    code: list  # the lines between the fences
    words: set = field(default_factory=set)
    name: str = ""
    after: str = ""
    continued: bool = False  # another block continues this one

    @property
    def first_code_line(self):
        return self.line + 1

    def where(self):
        return f"{rel(self.page)}:{self.line}"


def rel(path):
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def fence_of(line):
    """The opening fence of a code block on this line, or None (CommonMark: a backtick fence's
    info string has no backtick)."""
    m = FENCE.match(line)
    if m and m.group(2)[0] == "`" and "`" in m.group(3) + m.group(4):
        return None
    return m


def parse_page(page):
    """The fenced blocks of a page, with the markers above them."""
    lines = page.read_text(encoding="utf-8").split("\n")
    blocks = []
    i = 0
    while i < len(lines):
        m = fence_of(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
        j = i + 1
        while j < len(lines) and not re.match(r"^\s*" + re.escape(fence[0]) + "{%d,}\\s*$" % len(fence), lines[j]):
            j += 1
        if j == len(lines):
            raise DocError(f"{rel(page)}:{i + 1}: code block is never closed")
        code = [l[len(indent):] if l.startswith(indent) else l for l in lines[i + 1:j]]
        block = Block(page, i + 1, lang, code)
        marker = MARKER.match(lines[i - 1]) if i > 0 else None
        if marker:
            if lang not in CPP_TAGS:
                raise DocError(f"{block.where()}: a check marker above a ```{lang} block (only ```cpp blocks are checked)")
            for word in marker.group(1).split():
                key, eq, value = word.partition("=")
                if eq and key == "id" and value:
                    block.name = value
                elif eq and key == "after" and value:
                    block.after = value
                elif not eq and word in WORDS:
                    block.words.add(word)
                else:
                    raise DocError(f"{block.where()}: unknown check marker word '{word}'")
        blocks.append(block)
        i = j + 1
    cpp = [b for b in blocks if b.lang in CPP_TAGS]
    named = {}
    for b in cpp:
        if b.name:
            if b.name in named:
                raise DocError(f"{b.where()}: id={b.name} is already the name of the block at line {named[b.name].line}")
            named[b.name] = b
    for b in cpp:
        if b.after:
            if b.after not in named or named[b.after].line > b.line:
                raise DocError(f"{b.where()}: after={b.after}, but no block above it on this page has id={b.after}")
            base = named[b.after]
            if base.words & {"main", "run", "skip", "fail"}:
                raise DocError(f"{b.where()}: after={b.after}, but that block is marked "
                               f"{' '.join(sorted(base.words))} (only plain blocks can be continued)")
            base.continued = True
        if "skip" in b.words and b.words - {"skip"}:
            raise DocError(f"{b.where()}: 'skip' with other words")
        if "fail" in b.words and b.words & {"main", "run"}:
            raise DocError(f"{b.where()}: 'fail' with main or run")
    return cpp, named


def checked_blocks(cpp):
    return [b for b in cpp if "skip" not in b.words and not b.continued]


def chain(block, named):
    """The blocks whose code makes up this block's translation unit, first to last."""
    parts = [block]
    while parts[0].after:
        parts.insert(0, named[parts[0].after])
    return parts


def source_of(block, named):
    out = []
    page = str(block.page.resolve()).replace("\\", "\\\\").replace('"', '\\"')
    for part in chain(block, named):
        code, first = part.code, part.first_code_line
        if "main" in part.words:
            k = 0
            while k < len(code) and (not code[k].strip() or code[k].lstrip().startswith("#include")):
                k += 1
            out.append(f'#line {first} "{page}"')
            out.extend(code[:k])
            out.append("int main() {")
            out.append(f'#line {first + k} "{page}"')
            out.extend(code[k:])
            out.append("return 0;")
            out.append("}")
        else:
            out.append(f'#line {first} "{page}"')
            out.extend(code)
    return "\n".join(out) + "\n"


def compile_command(db_path, probe):
    """The probe's compile command (arguments, directory), without source, output and depfile."""
    try:
        db = json.loads(Path(db_path).read_text())
    except FileNotFoundError:
        sys.exit(f"check-docs: {db_path} not found (configure the build first: "
                 f"cmake -S . -B build)")
    probe = str(Path(probe).resolve()) if probe else None
    for entry in db:
        file = entry["file"]
        if (probe and str(Path(entry["directory"], file).resolve()) == probe) or (
                not probe and file.endswith("docs_check/flags_probe.cpp")):
            args = entry["arguments"] if "arguments" in entry else shlex.split(entry["command"])
            kept, skip_next = [], False
            for a in args:
                if skip_next:
                    skip_next = False
                    continue
                if a in ("-o", "-MF", "-MT", "-MQ"):
                    skip_next = True
                    continue
                if a in ("-c", "-MD", "-MMD") or a == file or a.startswith("-o"):
                    continue
                kept.append(a)
            return kept + ["-fdiagnostics-color=never"], entry["directory"]
    sys.exit(f"check-docs: the target inn_docs_check_flags is not in {db_path} "
             f"(configure with -DINN_BUILD_TESTS=ON)")


def work_dir_of(block, work):
    d = Path(work) / rel(block.page).replace("/", "_").replace(".md", "") / f"line{block.line}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def check(block, named, cmd, cwd, work):
    """Checks one block; returns (ok, report)."""
    d = work_dir_of(block, work)
    src = d / "block.cpp"
    src.write_text(source_of(block, named), encoding="utf-8")
    kind = "fail" if "fail" in block.words else "run" if "run" in block.words else "compile"
    if kind == "run":
        exe = d / "block"
        args = cmd + [str(src), "-o", str(exe), "-pthread"]
    else:
        args = cmd + ["-fsyntax-only", str(src)]
    try:
        p = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return False, f"{block.where()}: the compiler ran longer than {COMPILE_TIMEOUT_S} s"
    output = p.stdout + p.stderr
    if kind == "fail":
        if p.returncode == 0:
            return False, f"{block.where()}: compiled, but it is marked fail (an error example)"
        if not re.search(r"static assertion failed: inn: ", output):
            return False, (f"{block.where()}: failed to compile as expected, but not with an inn "
                           f"static_assert:\n{output}")
        return True, f"{block.where()}: fails to compile, as it should"
    if p.returncode != 0:
        return False, (f"{block.where()}: does not compile ({src})\n$ {shlex.join(args)}\n{output}")
    if kind == "compile":
        return True, f"{block.where()}: compiles"
    try:
        r = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return False, f"{block.where()}: the program ran longer than {RUN_TIMEOUT_S} s"
    if r.returncode != 0:
        return False, (f"{block.where()}: the program exited with {r.returncode}\n"
                       f"{r.stdout}{r.stderr}")
    return True, f"{block.where()}: compiles and runs"


LINK = re.compile(r"([A-Za-z0-9_./-]*\.md)#([A-Za-z0-9_-]+)")
SELF_LINK = re.compile(r"\]\(#([A-Za-z0-9_-]+)\)")
LINK_SOURCES = ("include", "tests", "examples", "benchmarks", "docs", "README.md")
LINK_SUFFIXES = {".hpp", ".h", ".cpp", ".md", ".txt", ".cmake", ".py", ".sh"}
SPEC_CITATION = re.compile(r"\b(?:[Ss]pec|[Rr]eference|FrEIA)\s*§|freia-reference\.md|spec quirk \d")


def anchors_of(page):
    text = page.read_text(encoding="utf-8")
    found = set(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", text))
    in_code = False
    for line in text.split("\n"):
        if fence_of(line):
            in_code = not in_code
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m and not in_code:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
            found.add(slug)
    return found


def check_links():
    """Every PAGE.md#anchor in the sources and docs, and every (#anchor) of a page, resolves."""
    files = []
    for name in LINK_SOURCES:
        path = ROOT / name
        if path.is_file():
            files.append(path)
        else:
            files.extend(p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix in LINK_SUFFIXES
                         and "data" not in p.relative_to(ROOT).parts)
    cache, bad, count = {}, [], 0

    def anchors(page):
        if page not in cache:
            cache[page] = anchors_of(page) if page.is_file() else None
        return cache[page]

    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace")
        refs = []
        for m in LINK.finditer(text):
            if "//" in m.group(1) or text[max(0, m.start() - 10):m.start()].rstrip().endswith(":"):
                continue  # a URL (https://...) or scheme-relative link
            candidates = [(f.parent / m.group(1)).resolve(), (ROOT / m.group(1)).resolve()]
            page = next((c for c in candidates if c.is_file()), candidates[0])
            refs.append((m.start(), page, m.group(1), m.group(2)))
        if f.suffix == ".md":
            refs.extend((m.start(), f, rel(f), m.group(1)) for m in SELF_LINK.finditer(text))
        for m in SPEC_CITATION.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            bad.append(f"{rel(f)}:{line}: '{m.group(0)}' cites a document that is not in the "
                       f"repository; link an entry of docs/freia-semantics.md or say it in words")
        for start, page, written, anchor in refs:
            count += 1
            line = text.count("\n", 0, start) + 1
            have = anchors(page)
            if have is None:
                bad.append(f"{rel(f)}:{line}: {written}#{anchor}: no page {written}")
            elif anchor not in have:
                bad.append(f"{rel(f)}:{line}: {written}#{anchor}: {rel(page)} has no anchor '{anchor}'")
    for b in bad:
        print("FAIL " + b)
    print(f"check-docs: {count} links to anchors in {len(files)} files, {len(bad)} problems")
    return 1 if bad else 0


def default_pages():
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pages", nargs="*", help="PAGE or PAGE:LINE (default: README.md docs/*.md)")
    ap.add_argument("--list", action="store_true", help="list the checked blocks as PAGE:LINE")
    ap.add_argument("--links", action="store_true", help="check links to anchors, nothing else")
    ap.add_argument("--compile-commands", default=str(ROOT / "build" / "compile_commands.json"))
    ap.add_argument("--probe", help="the source of inn_docs_check_flags (default: found by name)")
    ap.add_argument("--work", default=str(ROOT / "build" / "docs_check"),
                    help="where generated sources and programs go")
    ap.add_argument("-j", "--jobs", type=int, default=1)
    opts = ap.parse_args()
    if opts.links:
        return check_links()

    selected = []  # (page, line or None)
    for arg in opts.pages or [str(p) for p in default_pages()]:
        m = re.match(r"^(.*\.md):(\d+)$", arg)
        page, line = (m.group(1), int(m.group(2))) if m else (arg, None)
        path = Path(page) if Path(page).is_absolute() else ROOT / page
        if not path.is_file():
            sys.exit(f"check-docs: no page {page}")
        selected.append((path, line))

    todo = []
    try:
        for path, line in selected:
            cpp, named = parse_page(path)
            blocks = checked_blocks(cpp)
            if line is not None:
                blocks = [b for b in blocks if b.line == line]
                if not blocks:
                    sys.exit(f"check-docs: no checked block starts at {rel(path)}:{line} "
                             f"(the page changed? re-run cmake to list its blocks again)")
            todo.extend((b, named) for b in blocks)
    except DocError as e:
        sys.exit(f"check-docs: {e}")

    if opts.list:
        for b, _ in todo:
            print(b.where())
        return 0

    cmd, cwd = compile_command(opts.compile_commands, opts.probe)
    failures = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
        futures = [pool.submit(check, b, named, cmd, cwd, opts.work) for b, named in todo]
        for f in futures:
            ok, report = f.result()
            print(("ok   " if ok else "FAIL ") + report, flush=True)
            failures += not ok
    print(f"check-docs: {len(todo) - failures} of {len(todo)} blocks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
