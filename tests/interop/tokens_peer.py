"""Independent verifiers for tokctl-issued access tokens (tests/interop/tokens_run.sh).

    python3 tokens_peer.py pyjwt|jwcrypto JWKS_FILE TOKEN_FILE ISS AUD [--expect-fail]

Verifies the compact JWS in TOKEN_FILE against the JWKS in JWKS_FILE (the key picked by the
token's kid) with PyJWT (keys built with jwt.PyJWK, no PyJWKClient) or jwcrypto (JWKSet), checks
the RFC 9068 profile: typ at+jwt, iss, aud, and the required claims sub, client_id, exp, iat, jti.
Prints "ok" or the reason and exits 0 when the outcome is the expected one, 1 otherwise.
"""

import json
import sys

REQUIRED = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id")


def check_profile(header, claims, iss, aud):
    if header.get("typ") != "at+jwt":
        raise ValueError("typ is %r, not at+jwt" % header.get("typ"))
    missing = [c for c in REQUIRED if c not in claims]
    if missing:
        raise ValueError("missing claims: %s" % ", ".join(missing))
    if claims["iss"] != iss:
        raise ValueError("iss %r != %r" % (claims["iss"], iss))
    auds = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if aud not in auds:
        raise ValueError("aud %r does not contain %r" % (claims["aud"], aud))
    if not claims["exp"] > claims["iat"]:
        raise ValueError("exp <= iat")


def verify_pyjwt(jwks, token, iss, aud):
    import jwt

    header = jwt.get_unverified_header(token)
    kid = header.get("kid")
    matches = [k for k in jwks["keys"] if k.get("kid") == kid]
    if len(matches) != 1:
        raise ValueError("kid %r: %d keys in the JWKS" % (kid, len(matches)))
    jwk = jwt.PyJWK(matches[0])
    alg = matches[0].get("alg") or header["alg"]
    if header["alg"] != alg:
        raise ValueError("header alg %r but the key is for %r" % (header["alg"], alg))
    claims = jwt.decode(
        token,
        jwk.key,
        algorithms=[alg],
        audience=aud,
        issuer=iss,
        options={"require": list(REQUIRED)},
    )
    check_profile(header, claims, iss, aud)


def verify_jwcrypto(jwks, token, iss, aud):
    from jwcrypto import jwk, jwt

    keyset = jwk.JWKSet.from_json(json.dumps(jwks))
    t = jwt.JWT(
        jwt=token,
        key=keyset,
        check_claims={"iss": iss, "aud": aud, "exp": None, "sub": None, "jti": None, "iat": None},
    )
    header = json.loads(t.header)
    claims = json.loads(t.claims)
    check_profile(header, claims, iss, aud)


def main():
    args = [a for a in sys.argv[1:] if a != "--expect-fail"]
    expect_fail = "--expect-fail" in sys.argv[1:]
    if len(args) != 5:
        print(__doc__.strip().splitlines()[2].strip())
        return 2
    impl, jwks_file, token_file, iss, aud = args
    with open(jwks_file) as f:
        jwks = json.load(f)
    with open(token_file) as f:
        token = f.read().strip()
    verify = {"pyjwt": verify_pyjwt, "jwcrypto": verify_jwcrypto}[impl]
    try:
        verify(jwks, token, iss, aud)
    except Exception as e:  # any refusal counts as a failure to verify
        if expect_fail:
            print("ok (refused: %s: %s)" % (type(e).__name__, e))
            return 0
        print("refused: %s: %s" % (type(e).__name__, e))
        return 1
    if expect_fail:
        print("accepted a token it should refuse")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
