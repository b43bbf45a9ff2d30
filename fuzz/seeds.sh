#!/usr/bin/env bash
# Extracts seed corpora for the fuzz targets from the third-party vectors (Wycheproof, the JOSE
# cookbook, RFC examples) into OUT/<target>/, one input per file named by its SHA-1, plus the small
# hand seeds committed in fuzz/seeds/<target>/ and the regression inputs in fuzz/regressions/<target>/.
# Usage: fuzz/seeds.sh OUT [VECTORS_DIR]   (VECTORS_DIR defaults to ../shared/vectors, or
# $TOKCTL_VECTORS_DIR). Idempotent; the corpora are generated, never committed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: fuzz/seeds.sh OUT [VECTORS_DIR]}
vectors=${2:-${TOKCTL_VECTORS_DIR:-$here/../../shared/vectors}}
if [[ ! -d "$vectors" ]]; then
  echo "seeds: no vectors directory at $vectors (pass it as the second argument)" >&2
  exit 1
fi
mkdir -p "$out"
python3 - "$out" "$vectors" "$here" <<'PY'
import base64, binascii, glob, hashlib, json, os, sys

out, vectors, here = sys.argv[1:4]
targets = ["fuzz_jws", "fuzz_jwe", "fuzz_jwk", "fuzz_key_material", "fuzz_json", "fuzz_policy", "fuzz_time", "fuzz_form", "fuzz_remote"]
counts = {t: 0 for t in targets}
MAX = 64 * 1024

def add(target, data):
    if isinstance(data, str):
        data = data.encode()
    if not data or len(data) > MAX:
        return
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, hashlib.sha1(data).hexdigest())
    if not os.path.exists(p):
        with open(p, "wb") as f:
            f.write(data)
        counts[target] += 1

def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

def compact_parts(token):
    # The JSON segments of a compact JWS/JWE (header; JWS payload when it is JSON) seed fuzz_json.
    parts = token.split(".")
    for seg in parts[:2]:
        try:
            raw = b64url(seg)
            json.loads(raw)
            add("fuzz_json", raw)
        except Exception:
            pass

def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)

def key_json(obj):
    text = json.dumps(obj, indent=1)
    add("fuzz_jwk", text)
    add("fuzz_key_material", text)
    add("fuzz_json", text)

# JOSE cookbook (RFC 7520, RFC 7797, RFC 8037).
cook = os.path.join(vectors, "jose-cookbook")
for path in sorted(glob.glob(os.path.join(cook, "**", "*.json"), recursive=True)):
    doc = load(path)
    if "kty" in doc:
        key_json(doc)
        continue
    inp = doc.get("input", {})
    keys = inp.get("key")
    for k in (keys if isinstance(keys, list) else [keys]):
        if isinstance(k, dict):
            key_json(k)
    compact = doc.get("output", {}).get("compact")
    if isinstance(compact, str):
        target = "fuzz_jwe" if compact.count(".") == 4 else "fuzz_jws"
        add(target, compact)
        compact_parts(compact)

# RFC examples (latchset/jose, hotplace).
rfc = os.path.join(vectors, "rfc-examples")
for path in sorted(glob.glob(os.path.join(rfc, "*", "*"))):
    ext = os.path.splitext(path)[1]
    with open(path, "rb") as f:
        data = f.read().strip()
    if ext in (".jwk", ".jwkset"):
        add("fuzz_jwk", data); add("fuzz_key_material", data); add("fuzz_json", data)
    elif ext == ".pem":
        add("fuzz_key_material", data)
    elif ext in (".jwsc", ".jwec", ".jws"):
        text = data.decode()
        if text.startswith("{"):
            add("fuzz_json", data)
            continue
        add("fuzz_jwe" if text.count(".") == 4 else "fuzz_jws", text)
        compact_parts(text)
    elif ext in (".jwsf", ".jwsg", ".jwef", ".jweg"):
        add("fuzz_json", data)

# Wycheproof: JOSE test files (tokens and keys), and key encodings from the signature tests.
wp = os.path.join(vectors, "wycheproof")
for name in ("json_web_signature_test.json", "json_web_key_test.json", "json_web_crypto_test.json",
             "json_web_encryption_test.json"):
    path = os.path.join(wp, name)
    if not os.path.exists(path):
        continue
    for group in load(path).get("testGroups", []):
        for field in ("private", "public"):
            if isinstance(group.get(field), dict):
                key_json(group[field])
        for test in group.get("tests", []):
            for field, target in (("jws", "fuzz_jws"), ("jwe", "fuzz_jwe")):
                token = test.get(field)
                if isinstance(token, str):
                    add(target, token)
                    compact_parts(token)
                elif isinstance(token, dict):
                    add("fuzz_json", json.dumps(token))
for path in sorted(glob.glob(os.path.join(wp, "*_test.json"))):
    if os.path.basename(path).startswith("json_web"):
        continue
    doc = load(path)
    for group in doc.get("testGroups", [])[:6]:
        for field in ("publicKeyJwk", "privateKeyJwk", "keyJwk"):
            if isinstance(group.get(field), dict):
                key_json(group[field])
        for field in ("publicKeyPem", "privateKeyPem"):
            if isinstance(group.get(field), str):
                add("fuzz_key_material", group[field])
        for field in ("publicKeyDer", "privateKeyDer"):
            if isinstance(group.get(field), str):
                try:
                    add("fuzz_key_material", binascii.unhexlify(group[field]))
                except binascii.Error:
                    pass
        for test in group.get("tests", [])[:3]:
            for field in ("private", "public"):
                if isinstance(test.get(field), dict):
                    key_json(test[field])

# The example policy and subjects files.
for path in sorted(glob.glob(os.path.join(here, "..", "examples", "*.yaml"))):
    with open(path, "rb") as f:
        add("fuzz_policy", f.read())

# Committed hand seeds and regression inputs.
for base in ("seeds", "regressions"):
    for target in targets:
        for path in sorted(glob.glob(os.path.join(here, base, target, "*"))):
            with open(path, "rb") as f:
                add(target, f.read())

print("seeds: " + ", ".join(f"{t} {len(os.listdir(os.path.join(out, t))) if os.path.isdir(os.path.join(out, t)) else 0}" for t in targets))
PY
