#!/usr/bin/env bash
# Shell completions, tried in the real shells: bash (with bash-completion loaded), zsh (-f, compinit,
# driven through a pseudo-terminal so the real completion system runs) and fish (complete -C).
#
#   usage: bash tests/docs/completion_test.sh TOKCTL
#
# The expected lists come from the CLI's own definition (`tokctl __spec`: every command path, its
# subcommands, its options and what each value completes to), so a value or flag added to the CLI is
# expected here without editing this test. A few spot checks (issue --format has jwt, file options
# complete file names, ...) make sure the definition itself says what it should.
# Exit 0 when all pass; the last line is `completion: N passed, M failed`.
set -u

if [[ $# -ne 1 ]]; then
  echo "usage: $0 TOKCTL" >&2
  exit 2
fi
TOKCTL=$1
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3

exec "$PY" - "$TOKCTL" <<'EOF'
import json, os, re, select, shutil, subprocess, sys, tempfile, time

tokctl = sys.argv[1]
results = []  # (ok, message)


def ok(msg):
    results.append((True, msg))


def bad(msg):
    results.append((False, msg))


def finish():
    for good, msg in results:
        print(("ok: " if good else "FAIL: ") + msg)
    passed = sum(1 for g, _ in results if g)
    print(f"completion: {passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


tmp = tempfile.mkdtemp(prefix="tokctl-completion-")
try:
    spec = json.loads(subprocess.run([tokctl, "__spec"], check=True, capture_output=True, text=True).stdout)
    scripts = {}
    for shell in ("bash", "zsh", "fish"):
        scripts[shell] = subprocess.run([tokctl, "completion", shell], check=True, capture_output=True,
                                        text=True).stdout
except Exception as e:  # noqa: BLE001 - any failure here is a test failure with its reason
    bad(f"cannot run {tokctl}: {e}")
    finish()

by_path = {c["path"]: c for c in spec}
root = by_path[""]
global_names = {tuple(o["names"]) for o in root["options"]}

# ------------------------------------------------------------------------------ spot checks on the spec
def option(path, name):
    for o in by_path.get(path, {}).get("options", []):
        if name in o["names"]:
            return o
    return None


def kind(path, name):
    o = option(path, name)
    return (o.get("value") or {}).get("kind") if o else None


def choices(path, name):
    o = option(path, name)
    return set((o.get("value") or {}).get("choices", [])) if o else set()


spot_choices = {
    ("issue", "--format"): {"jwt", "opaque", "wrapped", "jwe"},
    ("issue", "--type"): {"access", "refresh", "id"},
    ("encrypt", "--alg"): {"RSA-OAEP-256", "ECDH-ES+A256KW", "dir", "PBES2-HS512+A256KW"},
    ("encrypt", "--enc"): {"A256GCM", "A128CBC-HS256"},
    ("keys generate", "--alg"): {"ES256", "EdDSA", "HS256", "RSA-OAEP-256", "A256KW"},
    ("keys generate", "--crv"): {"Ed25519", "Ed448", "P-256", "X25519"},
    ("keys add", "--alg"): {"ES256", "ECDH-ES+A256KW"},
    ("keys add", "--crv"): {"Ed448", "X448"},
    ("keys add", "--state"): {"next", "active"},
    ("keys import", "--state"): {"next", "active"},
    ("verify", "--alg"): {"ES256", "RS256", "EdDSA"},
    ("exchange", "--mode"): {"delegate", "impersonate", "embed"},
    ("", "--output"): {"text", "json"},
}
for (path, name), want in spot_choices.items():
    got = choices(path, name)
    if kind(path, name) == "choice" and want <= got:
        ok(f"__spec: '{path} {name}' completes to its values ({len(got)})")
    else:
        bad(f"__spec: '{path} {name}' should offer at least {sorted(want)}; has kind {kind(path, name)}, "
            f"values {sorted(got)} (cli/common.hpp: choice_value or a CLI::IsMember check)")
# keys list --state, --type and --mode wherever they exist: every one completes to values.
for c in spec:
    for o in c["options"]:
        if {"--state", "--type", "--mode", "--format", "--enc", "--crv"} & set(o["names"]) and o["takes_value"]:
            if (o.get("value") or {}).get("kind") != "choice":
                bad(f"__spec: '{c['path']} {o['names'][-1]}' takes one of a fixed set but offers no values")

spot_files = [("", "--config"), ("", "--passphrase-file"), ("verify", "--key"), ("verify", "--jwks"),
              ("verify", "--secret-file"), ("verify", "--decrypt-key"), ("sign", "--key"), ("encrypt", "--key"),
              ("decrypt", "--key"), ("keys generate", "--out"), ("keys jwks", "--out"), ("issue", "--claims")]
for path, name in spot_files:
    if kind(path, name) == "file":
        ok(f"__spec: '{path} {name}' completes file names")
    else:
        bad(f"__spec: '{path} {name}' should complete file names, has kind {kind(path, name)} "
            f"(mark it with file_value() in cli/common.hpp)")
if kind("", "--keystore") == "directory":
    ok("__spec: --keystore completes directory names")
else:
    bad(f"__spec: --keystore should complete directories, has kind {kind('', '--keystore')}")
if any(p["value"]["kind"] == "command" for p in by_path.get("help", {}).get("positionals", [])):
    ok("__spec: help's argument completes command names")
else:
    bad("__spec: help's argument should complete command names (command_value())")

# Every option or argument that names a file or directory (by its name or its description) is marked,
# so a new --foo-file cannot ship completing nothing. Exceptions: none so far.
file_words = re.compile(r"(^|[^a-z])(file|files|directory|dir)([^a-z]|$)|-file$|--out$", re.I)
unmarked = []
for c in spec:
    items = [(o["names"][-1], o["description"], (o.get("value") or {}).get("kind")) for o in c["options"]
             if o["takes_value"]]
    items += [(p["name"], p["description"], p["value"]["kind"]) for p in c["positionals"]]
    for name, desc, k in items:
        text = name + " " + re.sub(r"\(.*?\)", "", desc)  # "(default: ... file)" is not what it takes
        if file_words.search(text) and k not in ("file", "directory", "choice"):
            unmarked.append(f"'{(c['path'] + ' ' + name).strip()}'")
if unmarked:
    bad("__spec: options that name a file but complete no file names: " + ", ".join(sorted(set(unmarked))) +
        " (file_value()/dir_value() in cli/common.hpp)")
else:
    ok("__spec: every option naming a file or directory completes file or directory names")

# --------------------------------------------------------------------------------------- the queries
# A query: the words before the cursor, the word being completed, the expected candidates, and how to
# compare ("exact": the same set; "has": at least these; "files"/"dirs": the fixture's names).
queries = []


def q(words, cur, want, how, label):
    queries.append({"words": words, "cur": cur, "want": set(want), "how": how, "label": label})


def path_words(path):
    return path.split() if path else []


def is_global(o):
    return tuple(o["names"]) in global_names


for c in spec:
    pw = path_words(c["path"])
    where = "tokctl " + c["path"] if c["path"] else "tokctl"
    if c["subcommands"]:
        q(pw, "", c["subcommands"], "exact", f"'{where} <TAB>' offers its subcommands")
        q(["help"] + pw, "", c["subcommands"], "exact", f"'tokctl help {c['path']} <TAB>'".replace("  ", " ") +
          " offers the same subcommands")
    longs = [n for o in c["options"] for n in o["names"] if n.startswith("--")]
    q(pw, "--", longs, "exact", f"'{where} --<TAB>' offers its {len(longs)} long options")
    for o in c["options"]:
        if not o["takes_value"] or (is_global(o) and c["path"] not in ("", "keys generate")):
            continue
        name = o["names"][-1]
        v = o.get("value") or {"kind": "text"}
        label = f"'{where} {name} <TAB>'"
        if v["kind"] == "choice":
            q(pw + [name], "", v["choices"], "exact", label + f" offers its {len(v['choices'])} values")
        elif v["kind"] == "file":
            q(pw + [name], "al", [], "files", label + " offers file names")
        elif v["kind"] == "directory":
            q(pw + [name], "al", [], "dirs", label + " offers directory names only")
        else:
            q(pw + [name], "", [], "exact", label + " offers nothing (free text)")
    for p in c["positionals"]:
        v = p["value"]
        label = f"'{where} <{p['name']}>'"
        if v["kind"] == "choice":
            q(pw, "", v["choices"], "exact", label + " offers its values")
        elif v["kind"] == "file":
            q(pw, "al", [], "files", label + " offers file names")

q(["help", "keys", "generate"], "", [], "exact", "'tokctl help keys generate <TAB>' offers nothing more")
q(["-o", "json", "keys"], "", by_path["keys"]["subcommands"], "exact",
  "'tokctl -o json keys <TAB>': a global option's value is skipped")
q(["--config", "keys"], "", root["subcommands"], "exact",
  "'tokctl --config keys <TAB>': 'keys' is --config's value, not the command")
q(["verify", "--sub", "keys", "--alg"], "", choices("verify", "--alg"), "exact",
  "'tokctl verify --sub keys --alg <TAB>' stays in verify")
q(["keys", "generate", "--alg"], "EC", {a for a in choices("keys generate", "--alg") if a.startswith("EC")},
  "exact", "'tokctl keys generate --alg EC<TAB>' filters by the prefix")

# ------------------------------------------------------------------------------------------- fixture
work = os.path.join(tmp, "work")
os.makedirs(os.path.join(work, "alpha-dir"))
open(os.path.join(work, "alpha.jwk"), "w").close()
open(os.path.join(work, "beta.pem"), "w").close()
for shell, text in scripts.items():
    name = "_tokctl" if shell == "zsh" else "tokctl." + shell
    with open(os.path.join(tmp, name), "w") as f:
        f.write(text)
env = dict(os.environ, HOME=tmp, XDG_CONFIG_HOME=os.path.join(tmp, "config"), XDG_DATA_HOME=os.path.join(tmp, "data"),
           LC_ALL="C.UTF-8")
env.pop("BASH_ENV", None)
env.pop("ENV", None)


def sh_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def typed(words, cur):
    """The command line as a user types it: words quoted only where the shell needs it."""
    return " ".join(["tokctl"] + [w if re.fullmatch(r"[\w@%+=:,./-]+", w) else sh_quote(w) for w in words] + [cur])


# ---------------------------------------------------------------------------------------------- bash
def run_bash():
    lines = ["source /usr/share/bash-completion/bash_completion 2>/dev/null || true",
             "source " + sh_quote(os.path.join(tmp, "tokctl.bash")),
             "fn=$(complete -p tokctl | sed -n 's/.* -F \\([^ ]*\\) .*/\\1/p')",
             '[[ -n $fn ]] || { echo "no complete -F for tokctl" >&2; exit 1; }']
    for i, qu in enumerate(queries):
        words = ["tokctl"] + qu["words"] + [qu["cur"]]
        lines.append("COMP_WORDS=(" + " ".join(sh_quote(w) for w in words) + ")")
        lines.append(f"COMP_CWORD={len(words) - 1}; COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}")
        lines.append("COMPREPLY=()")
        lines.append(f"echo '@@{i}'")
        lines.append('"$fn" tokctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}" 2>/dev/null')
        lines.append("printf '%s\\n' \"${COMPREPLY[@]}\"")
    # --alg=VALUE: bash splits the word at '=' (COMP_WORDBREAKS)
    lines += ["COMP_WORDS=(tokctl encrypt --alg = ''); COMP_CWORD=4; COMPREPLY=()", "echo '@@eq'",
              '"$fn" tokctl "" = 2>/dev/null', "printf '%s\\n' \"${COMPREPLY[@]}\""]
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", "\n".join(lines)], cwd=work, env=env,
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"bash exited {r.returncode}: {r.stderr.strip()[:500]}")
    return parse_blocks(r.stdout)


def parse_blocks(text):
    out, cur = {}, None
    for line in text.split("\n"):
        m = re.fullmatch(r"@@(\w+)", line)
        if m:
            cur = m.group(1)
            out[cur] = []
        elif cur is not None and line != "":
            out[cur].append(line)
    return out


# ----------------------------------------------------------------------------------------------- fish
def run_fish():
    lines = ["source " + sh_quote(os.path.join(tmp, "tokctl.fish"))]
    for i, qu in enumerate(queries):
        line = typed(qu["words"], qu["cur"])
        lines.append(f"echo '@@{i}'")
        lines.append("complete -C " + sh_quote(line))
    lines += ["echo '@@eq'", "complete -C 'tokctl encrypt --alg='"]
    r = subprocess.run(["fish", "--no-config", "-c", "\n".join(lines)], cwd=work, env=env, capture_output=True,
                       text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"fish exited {r.returncode}: {r.stderr.strip()[:500]}")
    blocks = parse_blocks(r.stdout)
    return {k: [l.split("\t", 1)[0] for l in v] for k, v in blocks.items()}


# ------------------------------------------------------------------------------------------------ zsh
# An interactive `zsh -f` on a pseudo-terminal: compinit loads _tokctl from fpath (as an installed
# completion is), and a TAB runs the real completion system. compadd is wrapped to record the
# candidates it is given that match the word (the list zsh would offer) in a capture file.
ZSH_SETUP = r"""
unset zle_bracketed_paste
PS1='%% ' PROMPT_EOL_MARK='' LISTMAX=0
setopt no_beep no_auto_list no_list_ambiguous no_auto_menu no_menu_complete
fpath=(%(tmp)s $fpath)
autoload -Uz compinit && compinit -u -D
compadd() {
  if (( ${@[(I)-[OAD]*]} )); then builtin compadd "$@"; return; fi
  local -a __hits
  builtin compadd -O __hits "$@"
  (( ${#__hits} )) && print -rl -- $__hits >> %(capture)s
  builtin compadd "$@"
}
# TAB: the completion widget compinit set up, then a note that it has finished.
tokctl-test-complete() { zle complete-word; print -r done > %(capture)s.done }
zle -N tokctl-test-complete
bindkey '^I' tokctl-test-complete
"""


class Zsh:
    def __init__(self):
        import pty
        self.master, slave = pty.openpty()
        self.capture = os.path.join(tmp, "zsh.capture")
        zenv = dict(env, TERM="xterm", ZDOTDIR=tmp)
        self.proc = subprocess.Popen(["zsh", "-f", "-i"], stdin=slave, stdout=slave, stderr=slave, cwd=work,
                                     env=zenv, start_new_session=True)
        os.close(slave)
        self.buf = b""
        self.n = 0
        self.send(ZSH_SETUP % {"tmp": tmp, "capture": self.capture})
        self.sync()

    def send(self, text):
        os.write(self.master, text.encode())

    def read_until(self, marker, timeout=20.0):
        end = time.time() + timeout
        while marker not in self.buf:
            left = end - time.time()
            if left <= 0:
                raise RuntimeError("zsh did not answer; last output: " + self.buf[-400:].decode(errors="replace"))
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    self.buf += os.read(self.master, 65536)
                except OSError:
                    raise RuntimeError("zsh exited: " + self.buf[-400:].decode(errors="replace"))
        self.buf = self.buf[self.buf.index(marker) + len(marker):]

    def sync(self):
        # The marker is computed, so the terminal's echo of the typed line cannot match it.
        self.n += 1
        self.send(f"\x15echo sync-$(( {self.n} * 7 ))\n")
        self.read_until(f"sync-{self.n * 7}".encode())

    def complete(self, line):
        done = self.capture + ".done"
        open(self.capture, "w").close()
        if os.path.exists(done):
            os.unlink(done)
        self.send(line + "\t")
        # Wait for the widget to finish before typing on: zsh skips work when input is pending.
        end = time.time() + 20
        while not os.path.exists(done):
            if time.time() > end or self.proc.poll() is not None:
                raise RuntimeError(f"no completion for {line!r}; last output: " +
                                   self.buf[-400:].decode(errors="replace"))
            r, _, _ = select.select([self.master], [], [], 0.02)
            if r:
                self.buf = (self.buf + os.read(self.master, 65536))[-4096:]
        self.send("\x15")  # clear the line for the next query
        with open(self.capture) as f:
            return [l for l in f.read().split("\n") if l]

    def close(self):
        try:
            self.send("\x15exit\n")
            self.proc.wait(timeout=5)
        except Exception:  # noqa: BLE001
            self.proc.kill()
        os.close(self.master)


def run_zsh():
    z = Zsh()
    try:
        out = {}
        for i, qu in enumerate(queries):
            out[str(i)] = z.complete(typed(qu["words"], qu["cur"]))
        out["eq"] = z.complete("tokctl encrypt --alg=")
        return out
    finally:
        z.close()


# ----------------------------------------------------------------------------------------- comparing
def check(shell, answers):
    failures = []
    for i, qu in enumerate(queries):
        got = {g.rstrip("/") for g in answers.get(str(i), [])}
        want, how = qu["want"], qu["how"]
        if how == "exact":
            good = got == want
        elif how == "files":
            good = {"alpha.jwk", "alpha-dir"} <= got and "beta.pem" not in got
        else:  # dirs
            good = "alpha-dir" in got and "alpha.jwk" not in got
        if not good:
            line = " ".join(["tokctl"] + qu["words"] + [qu["cur"]])
            if how == "exact":
                detail = f"missing {sorted(want - got)}, unexpected {sorted(got - want)}"
            else:
                detail = f"got {sorted(got)} in a directory with alpha.jwk, alpha-dir/, beta.pem"
            failures.append(f"{qu['label']}: {detail}   [{line!r}]")
    if failures:
        bad(f"{shell}: {len(failures)} of {len(queries)} completions are wrong:\n    " + "\n    ".join(failures))
    else:
        ok(f"{shell}: all {len(queries)} completions match the CLI definition")
    eq = {g.split("=", 1)[-1] for g in answers.get("eq", [])}
    if eq == choices("encrypt", "--alg"):
        ok(f"{shell}: 'tokctl encrypt --alg=<TAB>' offers the values")
    else:
        bad(f"{shell}: 'tokctl encrypt --alg=<TAB>' offers {sorted(eq)}")


for shell, runner, exe in (("bash", run_bash, "bash"), ("zsh", run_zsh, "zsh"), ("fish", run_fish, "fish")):
    if shutil.which(exe) is None:
        bad(f"{shell}: not installed (the test needs bash, bash-completion, zsh and fish)")
        continue
    try:
        check(shell, runner())
    except Exception as e:  # noqa: BLE001
        bad(f"{shell}: could not run the completion: {e}")

shutil.rmtree(tmp, ignore_errors=True)
finish()
EOF
