#!/usr/bin/env bash
# Docs that cannot rot: checks man/tokctl.1 and completions/ against the command tree of the
# binary itself (`tokctl __spec`).
#
#   usage: bash tests/docs/check.sh TOKCTL SRC_DIR
#
# (a) every command path has a `.SS <path>` section in man/tokctl.1 that documents each of its own
#     flags in a `.TP` item tag (e.g. `.B \-\-alg`); global flags (those of the root command, which
#     every command inherits) are documented under `.SH GLOBAL OPTIONS`;
# (b) completions/tokctl.{bash,zsh,fish} are byte-identical to `tokctl completion <shell>` (they are
#     generated: after adding or changing a command, flag or value, regenerate them with the command
#     this check prints; tests/docs/completion_test.sh tries them in the real shells);
# (c) each completion file knows every command path, subcommand and flag;
# (d) flags that take no value are not completed as if they did (and vice versa), checked
#     against each command's --help.
# Exit 0 when all pass, 1 otherwise; the last line is `docs: N passed, M failed`.
set -u

if [[ $# -ne 2 ]]; then
  echo "usage: $0 TOKCTL SRC_DIR" >&2
  exit 2
fi
TOKCTL=$1
SRC=$2
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3

if [[ ! -x $TOKCTL ]]; then
  echo "FAIL: $TOKCTL is not an executable" >&2
  echo "docs: 0 passed, 1 failed"
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

if ! "$TOKCTL" __spec > "$tmp/spec.json" 2> "$tmp/spec.err"; then
  fail "'$TOKCTL __spec' failed: $(cat "$tmp/spec.err")"
  echo "docs: $passed passed, $failed failed"
  exit 1
fi

# Each command's --help, for check (d): which flags take a value.
"$PY" - "$tmp/spec.json" > "$tmp/paths" <<'EOF' || { echo "FAIL: cannot parse __spec output"; exit 1; }
import json, sys
for c in json.load(open(sys.argv[1])):
    print(c["path"])
EOF
mkdir -p "$tmp/help"
i=0
while IFS= read -r path; do
  # shellcheck disable=SC2086  # the path is words on purpose
  "$TOKCTL" $path --help > "$tmp/help/$i" 2>&1 || true
  printf '%s\t%s\n' "$i" "$path" >> "$tmp/help/index"
  i=$((i + 1))
done < "$tmp/paths"

regen="for s in bash zsh fish; do $TOKCTL completion \$s > $SRC/completions/tokctl.\$s; done"

# ---- (b) completion files are the generator's output -------------------------------------------
for shell in bash zsh fish; do
  file=$SRC/completions/tokctl.$shell
  if ! "$TOKCTL" completion "$shell" > "$tmp/gen.$shell" 2> "$tmp/gen.err"; then
    fail "'tokctl completion $shell' failed: $(cat "$tmp/gen.err")"
    continue
  fi
  if [[ ! -f $file ]]; then
    fail "completions/tokctl.$shell is missing; regenerate with: $regen"
  elif diff -u "$file" "$tmp/gen.$shell" > "$tmp/diff.$shell"; then
    pass "completions/tokctl.$shell matches 'tokctl completion $shell'"
  else
    fail "completions/tokctl.$shell differs from 'tokctl completion $shell' (- file, + generator):"
    sed 's/^/    /' "$tmp/diff.$shell"
    echo "    completions/ are generated from the CLI definition, never edited by hand; after adding or"
    echo "    changing a command, flag or value (cli/*.cpp), regenerate all three with:"
    echo "      $regen"
  fi
done

# ---- (a), (c), (d): structural checks in Python (stdlib only) ----------------------------------
"$PY" - "$tmp/spec.json" "$SRC" "$tmp/help" > "$tmp/py.out" 2>&1 <<'EOF'
import json, os, re, sys

spec_file, src, help_dir = sys.argv[1:4]
cmds = json.load(open(spec_file))
by_path = {c["path"]: c for c in cmds}
root = by_path.get("")
results = []  # (ok, message)


def ok(msg):
    results.append((True, msg))


def bad(msg):
    results.append((False, msg))


def names_key(o):
    return tuple(o["names"])


root_opts = {names_key(o) for o in root["options"]} if root else set()


def own_options(c):
    """Options documented in the command's own section (not inherited from the root)."""
    if c["path"] == "":
        return []
    return [o for o in c["options"] if names_key(o) not in root_opts]


def long_names(o):
    return [n for n in o["names"] if n.startswith("--")]


# ---------------------------------------------------------------------------------------------- (a)
man_path = os.path.join(src, "man", "tokctl.1")


def plain(text):
    """roff source line -> plain text: font escapes dropped, \\- and \\(hy made '-'."""
    text = re.sub(r"\\f(\[[^]]*\]|\(..|.)", "", text)
    text = text.replace("\\-", "-").replace("\\(hy", "-").replace("\\&", "").replace("\\e", "\\")
    return text


def macro_text(line):
    """Text of a macro line such as `.BR \\-o ", " \\-\\-output`: arguments without quotes."""
    parts = re.findall(r'"((?:[^"]|"")*)"|(\S+)', line.split(None, 1)[1] if " " in line else "")
    return " ".join(q if q else w for q, w in parts)


if not os.path.isfile(man_path):
    bad("man/tokctl.1 is missing")
else:
    lines = open(man_path, encoding="utf-8").read().split("\n")
    # Split into sections: key (kind, title) -> list of TP tag texts and all text.
    sections = {}  # ("SH"|"SS", title) -> {"tags": [...], "text": str}
    current = None
    expect_tag = False
    for raw in lines:
        line = raw.rstrip()
        m = re.match(r"^\.(SH|SS)\s+(.*)$", line)
        if m:
            title = plain(m.group(2)).strip().strip('"').strip()
            title = re.sub(r"\s+", " ", title)
            current = (m.group(1), title)
            sections.setdefault(current, {"tags": [], "text": ""})
            expect_tag = False
            continue
        if current is None:
            continue
        if re.match(r"^\.TP\b", line):
            expect_tag = True
            continue
        if line.startswith(".\\\""):
            continue
        if expect_tag:
            expect_tag = False
            tag = macro_text(line) if line.startswith(".") else line
            sections[current]["tags"].append(plain(tag))
        sections[current]["text"] += plain(line) + "\n"

    def documents(tags, flag):
        pat = re.compile(r"(?<![\w-])" + re.escape(flag) + r"(?![\w-])")
        return any(pat.search(t) for t in tags)

    glob = sections.get(("SH", "GLOBAL OPTIONS"))
    if glob is None:
        bad("man/tokctl.1: no '.SH GLOBAL OPTIONS' section")
    else:
        missing = [n for o in (root["options"] if root else []) for n in o["names"]
                   if not documents(glob["tags"], n)]
        if missing:
            bad("man/tokctl.1: GLOBAL OPTIONS does not document " + ", ".join(missing) +
                " (each needs a .TP item whose tag names it, e.g. '.B \\-\\-flag')")
        else:
            ok("man/tokctl.1: GLOBAL OPTIONS documents every global flag")

    for c in cmds:
        path = c["path"]
        if path == "":
            continue
        sec = sections.get(("SS", path)) or sections.get(("SS", "tokctl " + path))
        if sec is None:
            bad(f"man/tokctl.1: command '{path}' has no '.SS {path}' section"
                f" (a section per command path, titled exactly '{path}')")
            continue
        missing = [n for o in own_options(c) for n in long_names(o) if not documents(sec["tags"], n)]
        if missing:
            bad(f"man/tokctl.1: section '.SS {path}' does not document " + ", ".join(missing) +
                " (each flag needs a .TP item whose tag names it, e.g. '.B \\-\\-flag ARG')")
        else:
            ok(f"man/tokctl.1: '{path}' documents its {len(own_options(c))} flag(s)")

# ---------------------------------------------------------------------------------------------- (c)
def read(shell):
    p = os.path.join(src, "completions", "tokctl." + shell)
    return open(p, encoding="utf-8").read() if os.path.isfile(p) else None


def slash(path):
    return "".join("/" + w for w in path.split())


def all_names(c):
    return [n for o in c["options"] for n in o["names"]]


# bash: each path has a `'/a/b') opts='...' [subs='...']` arm listing its flags and subcommands.
text = read("bash")
if text is not None:
    arms = {m.group(1): m.group(2) + " " + (m.group(3) or "")
            for m in re.finditer(r"^\s*'([^']*)'\) opts='([^']*)'(?: subs='([^']*)')?", text, re.M)}
    problems = []
    for c in cmds:
        words = arms.get(slash(c["path"]))
        if words is None:
            problems.append(f"no case arm for command '{c['path'] or 'tokctl'}'")
            continue
        have = set(words.split())
        lack = [w for w in c["subcommands"] + all_names(c) if w not in have]
        if lack:
            problems.append(f"'{c['path'] or 'tokctl'}' lacks " + ", ".join(lack))
    if problems:
        bad("completions/tokctl.bash: " + "; ".join(problems))
    else:
        ok("completions/tokctl.bash knows every command path, subcommand and flag")

# zsh: each path has a `('/a/b')` block with opts=( '--flag:...' ), and _tokctl_subs a
# `('/a') reply=( 'name:...' )` arm for each path with subcommands.
text = read("zsh")
if text is not None:
    blocks = {}

    def entries(s):
        return {e.replace("\\", "") for e in re.findall(r"'((?:[^'\\]|\\.)*?)(?<!\\):", s)}

    for m in re.finditer(r"^\s*\('([^']*)'\)\n\s*opts=\((.*?)\)(?: ;;)?$", text, re.M):
        blocks[m.group(1)] = entries(m.group(2))
    for m in re.finditer(r"^\s*\('([^']*)'\) reply=\((.*?)\) ;;$", text, re.M):
        blocks.setdefault(m.group(1), set()).update(entries(m.group(2)))
    problems = []
    for c in cmds:
        have = blocks.get(slash(c["path"]))
        if have is None:
            problems.append(f"no case block for command '{c['path'] or 'tokctl'}'")
            continue
        lack = [w for w in c["subcommands"] + all_names(c) if w not in have]
        if lack:
            problems.append(f"'{c['path'] or 'tokctl'}' lacks " + ", ".join(lack))
    if problems:
        bad("completions/tokctl.zsh: " + "; ".join(problems))
    else:
        ok("completions/tokctl.zsh knows every command path, subcommand and flag")


# fish: `complete -c tokctl -n COND ...` lines; a command's condition names each word of its path.
def fish_lines(text):
    out = []
    for line in text.splitlines():
        m = re.match(r"^complete -c tokctl -n '([^']*)'(.*)$", line)
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def fish_cond_for(path):
    # `__tokctl_at /keys/generate` (the root: `__tokctl_at ""`)
    want = "".join("/" + w for w in path.split()) or '""'
    return lambda cond: cond == "__tokctl_at " + want


text = read("fish")
fish_value = {}  # (path, long flag) -> takes a value per fish (-x/-r)
if text is not None:
    lines = fish_lines(text)
    problems = []
    for c in cmds:
        match = fish_cond_for(c["path"])
        mine = [rest for cond, rest in lines if match(cond)]
        if c["path"] and not mine:
            problems.append(f"no completions for command '{c['path']}'")
            continue
        for s in c["subcommands"]:
            if not any(re.search(r"(^|\s)-a " + re.escape(s) + r"(\s|$)", r) for r in mine):
                problems.append(f"'{c['path'] or 'tokctl'}' does not offer subcommand {s}")
        for o in c["options"]:
            for n in o["names"]:
                flag = ("-l " + n[2:]) if n.startswith("--") else ("-s " + n[1:])
                hits = [r for r in mine if re.search(r"(^|\s)" + re.escape(flag) + r"(\s|$)", r)]
                if not hits:
                    problems.append(f"'{c['path'] or 'tokctl'}' lacks {n}")
                elif n.startswith("--"):
                    fish_value[(c["path"], n)] = bool(re.search(r"\s-[xr](\s|$)", hits[0]))
    if problems:
        bad("completions/tokctl.fish: " + "; ".join(problems))
    else:
        ok("completions/tokctl.fish knows every command path, subcommand and flag")

# ---------------------------------------------------------------------------------------------- (d)
# Which flags take a value, per `tokctl <path> --help` (CLI11 prints a type after value options:
# "--alg TEXT", "--threads UINT:..."; plain flags have none). Checked against __spec's
# takes_value and the fish completions (fish makes -x/-r options swallow the next word).
index = {}
for line in open(os.path.join(help_dir, "index")):
    i, _, path = line.rstrip("\n").partition("\t")
    index[path] = os.path.join(help_dir, i)
root_long = {n for o in (root["options"] if root else []) for n in long_names(o)}
spec_wrong, fish_wrong = {}, {}  # "path --flag" -> what --help says
for c in cmds:
    hp = index.get(c["path"])
    if not hp:
        continue
    takes = {}
    for line in open(hp, encoding="utf-8", errors="replace"):
        # The word after the flag is its value type, unless it is CLI11's "Excludes:" or "Needs:".
        m = re.match(r"^  (-[^\s]+)( (?!Excludes:|Needs:)\S)?", line)
        if m:
            for n in m.group(1).split(","):
                takes[n] = m.group(2) is not None
    for o in c["options"]:
        for n in long_names(o):
            if n not in takes:
                continue  # inherited global flags are not in a subcommand's --help
            where = n if n in root_long else (c["path"] + " " + n).strip()
            what = "takes a value" if takes[n] else "is a plain flag"
            if o.get("takes_value") != takes[n]:
                spec_wrong[where] = what
            fv = fish_value.get((c["path"], n))
            if fv is not None and fv != takes[n]:
                fish_wrong[where] = what
for label, wrong in (("tokctl __spec (takes_value)", spec_wrong),
                     ("completions/tokctl.fish (-x/-r)", fish_wrong)):
    if wrong:
        groups = {}
        for where, what in sorted(wrong.items()):
            groups.setdefault(what, []).append("'" + where + "'")
        bad(f"{label} disagrees with --help on which flags take a value: " + "; ".join(
            f"{', '.join(v)} {k}" for k, v in groups.items()) +
            " (takes_value in cli/completion.cpp)")
    else:
        ok(f"{label} agrees with --help on which flags take a value")

for good, msg in results:
    print(("ok: " if good else "FAIL: ") + msg)
sys.exit(0 if all(g for g, _ in results) else 1)
EOF
py_rc=$?
cat "$tmp/py.out"
py_ok=$(grep -c '^ok: ' "$tmp/py.out")
py_fail=$(grep -c '^FAIL: ' "$tmp/py.out")
passed=$((passed + py_ok))
failed=$((failed + py_fail))
if [[ $py_rc -ne 0 && $py_fail -eq 0 ]]; then
  failed=$((failed + 1))
  echo "FAIL: the structural checks crashed (exit $py_rc)"
fi

echo "docs: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
