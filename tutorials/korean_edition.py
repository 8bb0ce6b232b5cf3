"""Builds each tutorial's Korean edition from the English notebook and its Korean prose.

The code has one source: the English notebook. Its Korean edition, `NN_name.ko.ipynb` beside
it, is the same notebook (code cells, outputs and all) with every markdown cell replaced by
the Korean text kept in `ko/NN_name.md`. That file holds one section per markdown cell:

    <!-- cell 5dfc998b · English a1b2c3d4e5f6 -->
    ## 소개
    ...

The first number is the cell's id in the English notebook; the second is a digest of the
English text the section translates, so that when the English prose changes, the section is
reported as stale until its translation is brought up to date (and the digest with it).

    python korean_edition.py             # rewrite every .ko.ipynb from its sources
    python korean_edition.py 05_training.ipynb    # only this one
    python korean_edition.py --check     # report missing, stale or unknown sections; exit 1
    python korean_edition.py --skeleton 02_lstm_by_hand.ipynb
                                         # print a ko/*.md to fill in, English text in place
"""

import argparse
import copy
import hashlib
import json
import pathlib
import re
import sys

TUTORIALS = pathlib.Path(__file__).resolve().parent
KOREAN_DIR = TUTORIALS / "ko"
HEADER = re.compile(r"^<!-- cell (?P<id>[\w-]+) · English (?P<digest>[0-9a-f]{12}) -->$", re.M)


def english_notebooks():
    return sorted(path for path in TUTORIALS.glob("[0-9][0-9]_*.ipynb")
                  if not path.name.endswith(".ko.ipynb"))


def korean_path(english_path):
    return english_path.with_name(english_path.stem + ".ko.ipynb")


def prose_path(english_path):
    return KOREAN_DIR / (english_path.stem + ".md")


def digest(text):
    """The first 12 hex digits of the SHA-256 of an English markdown cell's text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def read_notebook(path):
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def write_notebook(notebook, path):
    # The layout Jupyter writes, so that a notebook saved there shows no spurious diff.
    text = json.dumps(notebook, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    path.write_text(text, encoding="utf-8")


def cell_text(cell):
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def parse_prose(text):
    """{cell id: (English digest, Korean text)} from a ko/*.md file."""
    headers = list(HEADER.finditer(text))
    sections = {}
    for index, header in enumerate(headers):
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        if header.group("id") in sections:
            raise ValueError(f"cell {header.group('id')} has two sections")
        sections[header.group("id")] = (header.group("digest"), text[header.end():end].strip("\n"))
    return sections


def problems(english_path):
    """What keeps the Korean prose from matching the English notebook, one line each."""
    path = prose_path(english_path)
    if not path.exists():
        return [f"{path.name}: missing"]
    sections = parse_prose(path.read_text(encoding="utf-8"))
    found = []
    markdown = {cell["id"]: cell_text(cell) for cell in read_notebook(english_path)["cells"]
                if cell["cell_type"] == "markdown"}
    for cell_id, text in markdown.items():
        if cell_id not in sections:
            found.append(f"{path.name}: cell {cell_id} has no Korean section")
        elif sections[cell_id][0] != digest(text):
            found.append(f"{path.name}: cell {cell_id} is stale (the English text changed; "
                         f"its digest is now {digest(text)})")
        elif not sections[cell_id][1].strip():
            found.append(f"{path.name}: cell {cell_id} is empty")
    found += [f"{path.name}: cell {cell_id} is not a markdown cell of {english_path.name}"
              for cell_id in sections if cell_id not in markdown]
    return found


def build(english_path):
    """The Korean edition of one English notebook (raises ValueError if its prose is not ready)."""
    found = problems(english_path)
    if found:
        raise ValueError("\n".join(found))
    sections = parse_prose(prose_path(english_path).read_text(encoding="utf-8"))
    notebook = copy.deepcopy(read_notebook(english_path))
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            cell["source"] = sections[cell["id"]][1].splitlines(True)
    notebook["metadata"]["language"] = "ko"
    return notebook


def skeleton(english_path):
    """A ko/*.md to translate: each section holds the English text it replaces."""
    parts = []
    for cell in read_notebook(english_path)["cells"]:
        if cell["cell_type"] == "markdown":
            text = cell_text(cell)
            parts.append(f"<!-- cell {cell['id']} · English {digest(text)} -->\n{text}\n")
    return "\n".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="English notebooks (default: all)")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--skeleton", metavar="NOTEBOOK")
    args = parser.parse_args(argv)
    if args.skeleton:
        print(skeleton(TUTORIALS / args.skeleton), end="")
        return 0
    paths = [TUTORIALS / pathlib.Path(name).name for name in args.notebooks] or english_notebooks()
    found = [line for path in paths for line in problems(path)]
    if args.check or found:
        print("\n".join(found) or "every Korean edition is up to date")
        return 1 if found else 0
    for path in paths:
        write_notebook(build(path), korean_path(path))
        print(f"wrote {korean_path(path).name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
