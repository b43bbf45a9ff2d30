"""bench/peers_pyjwt.py - the PyJWT peer of bench/peers.sh (not meant to be run by hand).

    /usr/bin/python3 bench/peers_pyjwt.py --version [ALG...]
        prints "PyJWT VERSION (cryptography VERSION, python VERSION)" and exits 0 if PyJWT
        (Debian: python3-jwt) can be imported and, when any ALG is not HS*, if it has the
        cryptography backend (python3-cryptography).
    /usr/bin/python3 bench/peers_pyjwt.py ALG JWK_FILE TOKENS_FILE NOW
        parses JWK_FILE once (jwt.PyJWK), reads TOKENS_FILE (one compact JWS a line), then calls
        jwt.decode(token, key, algorithms=[ALG]) on each token in turn, with the default
        options (signature, exp, iat and nbf checked), and prints one line:
        "valid=V tokens=N seconds=S", where S covers the loop only (not the interpreter's
        start-up, the imports, reading the file or parsing the key).

PyJWT checks exp/iat/nbf against the real clock; it has no "now" option. The tokens are issued
at NOW (the benchmark's start) with a one-hour lifetime, so they are valid while the run lasts;
the script refuses to start if the real clock is before NOW or an hour past it. The first
rejection, if any, goes to stderr; the exit status is 0 only if V == N.
"""
import json
import platform
import sys
import time


def fail(msg, code=3):
    print(msg, file=sys.stderr)
    sys.exit(code)


try:
    import jwt
except ImportError as e:
    fail(f"cannot import PyJWT ({e}): install python3-jwt")


def crypto_version():
    try:
        import cryptography
        return cryptography.__version__
    except ImportError:
        return None


def main(argv):
    if argv[:1] == ["--version"]:
        cv = crypto_version()
        if any(not a.startswith("HS") for a in argv[1:]) and not (cv and jwt.algorithms.has_crypto):
            fail("PyJWT has no cryptography backend: install python3-cryptography")
        print(f"PyJWT {jwt.__version__} (cryptography {cv or 'absent'}, python {platform.python_version()})")
        return 0

    if len(argv) != 4 or not argv[3].isdigit():
        fail("usage: peers_pyjwt.py ALG JWK_FILE TOKENS_FILE NOW", 2)
    alg, jwk_file, tokens_file, now = argv[0], argv[1], argv[2], int(argv[3])

    with open(tokens_file, encoding="ascii") as f:
        tokens = [line.strip() for line in f if line.strip()]
    with open(jwk_file, encoding="utf-8") as f:
        key = jwt.PyJWK(json.load(f), alg).key   # parsed once: a cryptography key, or bytes for HS*

    real = time.time()
    if real < now or real > now + 3600:
        fail(f"the real clock ({real:.0f}) is outside the tokens' lifetime ({now}..{now + 3600}); "
             "PyJWT cannot verify at a given instant")

    decode = jwt.decode
    algorithms = [alg]
    valid = 0
    first_error = None
    t0 = time.perf_counter()
    for token in tokens:
        try:
            decode(token, key, algorithms=algorithms)
            valid += 1
        except jwt.PyJWTError as e:
            if first_error is None:
                first_error = f"{type(e).__name__}: {e}"
    seconds = time.perf_counter() - t0

    print(f"valid={valid} tokens={len(tokens)} seconds={seconds:.6f}")
    if first_error is not None:
        print(f"first rejection: {first_error}", file=sys.stderr)
    return 0 if valid == len(tokens) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
