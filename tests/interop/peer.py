"""Peer half of the tokctl interop test: PyJWT 2.6 and jwcrypto 1.1 (Debian).

Run with /usr/bin/python3 -I (the Debian interpreter that has python3-jwt and
python3-jwcrypto; -I keeps PYTHONPATH and the script directory out of sys.path).

Subcommands (driven by run.sh, usable on their own for debugging):

  peer.py prepare DIR ISS SUB AUD
      Writes DIR/claims.json, generates one peer key per family (one RSA key
      shared by RS*/PS*, one per EC curve, Ed25519, Ed448, one secret per HS*)
      and, for every algorithm id, writes
        DIR/peer-ID.jwk       private JWK with "alg" and "kid"
        DIR/peer-ID.pub.jwk   public JWK (asymmetric only)
        DIR/peer-ID.pem       private key, PKCS#8 PEM (asymmetric only)
        DIR/peer-ID.pub.pem   public key, SPKI PEM (asymmetric only)
        DIR/peer-ID.secret    the secret, printable ASCII, no newline (HS* only)
        DIR/tok-pyjwt-ID      JWT signed by PyJWT (key given as PEM / raw secret)
        DIR/tok-jwcrypto-ID   JWT signed by jwcrypto (key given as JWK)
      and DIR/peer-jwks.json, a JWK Set of every asymmetric public key.
      Prints a FAIL line for any step that fails (successful steps are silent).

  peer.py verify JOBS ISS SUB
      JOBS is a tab-separated file, one job per line:
        LIB  ALG  KEYFILE  TOKENFILE  EXPECT  AUD  LABEL
      LIB is pyjwt | jwcrypto | claims (claims: TOKENFILE is a decoded payload
      whose claims are checked, e.g. what `jose jws ver -O` wrote).
      EXPECT is valid | bad-signature | bad-audience.
      Prints one line per job: "ok   LABEL" or "FAIL LABEL: reason".

Algorithm ids: the JWS alg name, except EdDSA-Ed25519 and EdDSA-Ed448.
"""

import base64
import json
import os
import sys
import time
import traceback

ALG_IDS = [
    "HS256", "HS384", "HS512",
    "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512",
    "EdDSA-Ed25519", "EdDSA-Ed448",
]
LEEWAY = 60


def jws_alg(alg_id):
    return "EdDSA" if alg_id.startswith("EdDSA") else alg_id


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


def short(exc):
    text = "%s: %s" % (type(exc).__name__, exc)
    return text if len(text) <= 200 else text[:200] + "..."


# --------------------------------------------------------------------------
# prepare: peer keys and peer-signed tokens


def generate_families():
    """One key per family; RSA generation is the slow part, so it is shared."""
    from jwcrypto import jwk
    fam = {"RSA": jwk.JWK.generate(kty="RSA", size=2048)}
    for crv in ("P-256", "P-384", "P-521"):
        fam[crv] = jwk.JWK.generate(kty="EC", crv=crv)
    for crv in ("Ed25519", "Ed448"):
        fam[crv] = jwk.JWK.generate(kty="OKP", crv=crv)
    return fam


FAMILY = {
    "RS": "RSA", "PS": "RSA",
    "ES256": "P-256", "ES384": "P-384", "ES512": "P-521",
    "EdDSA-Ed25519": "Ed25519", "EdDSA-Ed448": "Ed448",
}


def family_of(alg_id):
    return FAMILY.get(alg_id) or FAMILY.get(alg_id[:2])


def prepare(out, iss, sub, aud):
    import jwt as pyjwt
    from jwcrypto import jwk
    from jwcrypto import jwt as jcjwt

    now = int(time.time())
    claims = {"iss": iss, "sub": sub, "aud": aud, "iat": now,
              "exp": now + 900, "jti": base64.urlsafe_b64encode(
                  os.urandom(12)).decode().rstrip("=")}
    write_text(os.path.join(out, "claims.json"), json.dumps(claims))

    failures = 0
    jwks = {"keys": []}
    fam = generate_families()
    for alg_id in ALG_IDS:
        alg = jws_alg(alg_id)
        kid = "peer-" + alg_id
        base = os.path.join(out, "peer-" + alg_id)
        try:
            if alg.startswith("HS"):
                # Printable (base64url of hash-length random bytes), so that
                # it can also be handed to tokctl --secret-env.
                secret = base64.urlsafe_b64encode(os.urandom(
                    int(alg[2:]) // 8)).rstrip(b"=")
                write_bytes(base + ".secret", secret)
                key = jwk.JWK(kty="oct", k=base64.urlsafe_b64encode(
                    secret).decode().rstrip("="), alg=alg, kid=kid)
                write_text(base + ".jwk", key.export(private_key=True))
                pyjwt_key = secret
            else:
                src = json.loads(fam[family_of(alg_id)].export(private_key=True))
                src.update(alg=alg, kid=kid)
                key = jwk.JWK(**src)
                write_text(base + ".jwk", key.export(private_key=True))
                write_text(base + ".pub.jwk", key.export_public())
                jwks["keys"].append(json.loads(key.export_public()))
                write_bytes(base + ".pem", key.export_to_pem(
                    private_key=True, password=None))
                write_bytes(base + ".pub.pem", key.export_to_pem())
                pyjwt_key = read_bytes(base + ".pem")
        except Exception as e:  # noqa: BLE001 - report and go on
            print("FAIL peer key generation %s: %s" % (alg_id, short(e)))
            failures += 1
            continue

        # PyJWT: key as PEM (or raw secret), aud as a plain string.
        try:
            tok = pyjwt.encode(claims, pyjwt_key, algorithm=alg,
                               headers={"kid": kid, "typ": "JWT"})
            write_text(os.path.join(out, "tok-pyjwt-" + alg_id), tok)
        except Exception as e:  # noqa: BLE001
            print("FAIL pyjwt signs %s: %s" % (alg_id, short(e)))
            failures += 1

        # jwcrypto: key as JWK, aud as an array.
        try:
            c = dict(claims, aud=[aud, "someone-else"])
            t = jcjwt.JWT(header={"alg": alg, "kid": kid, "typ": "JWT"},
                          claims=c)
            t.make_signed_token(key)
            write_text(os.path.join(out, "tok-jwcrypto-" + alg_id),
                       t.serialize())
        except Exception as e:  # noqa: BLE001
            print("FAIL jwcrypto signs %s: %s" % (alg_id, short(e)))
            failures += 1
    write_text(os.path.join(out, "peer-jwks.json"), json.dumps(jwks))
    return failures


# --------------------------------------------------------------------------
# verify: peers check tokens (normally made by tokctl)


class Rejected(Exception):
    """The peer rejected the token; kind is 'signature', 'audience' or 'other'."""

    def __init__(self, kind, exc):
        super().__init__(short(exc))
        self.kind = kind


def check_claims(payload, iss, sub, aud):
    """Independent claim checks, for peers that do not validate claims."""
    now = time.time()
    problems = []
    if payload.get("iss") != iss:
        problems.append("iss %r != %r" % (payload.get("iss"), iss))
    if payload.get("sub") != sub:
        problems.append("sub %r != %r" % (payload.get("sub"), sub))
    a = payload.get("aud")
    if not (a == aud or (isinstance(a, list) and aud in a)):
        problems.append("aud %r does not contain %r" % (a, aud))
    exp, iat = payload.get("exp"), payload.get("iat")
    if not isinstance(exp, int) or isinstance(exp, bool) or exp < now - LEEWAY:
        problems.append("exp %r missing, not an integer or past" % (exp,))
    if not isinstance(iat, int) or isinstance(iat, bool) or iat > now + LEEWAY:
        problems.append("iat %r missing, not an integer or in the future"
                        % (iat,))
    return problems


def pyjwt_key_from_file(path, alg):
    data = read_bytes(path)
    if alg.startswith("HS"):
        if data.lstrip().startswith(b"{"):          # oct JWK -> raw secret
            return b64url_decode(json.loads(data)["k"])
        return data
    return data                                       # PEM bytes


def verify_pyjwt(alg, keyfile, token, iss, sub, aud):
    import jwt as pyjwt
    key = pyjwt_key_from_file(keyfile, alg)
    try:
        decoded = pyjwt.api_jwt.decode_complete(
            token, key, algorithms=[alg], audience=aud, issuer=iss,
            leeway=LEEWAY,
            options={"verify_signature": True,
                     "require": ["exp", "iat", "iss", "sub", "aud"]})
    except pyjwt.InvalidSignatureError as e:
        raise Rejected("signature", e)
    except pyjwt.InvalidAudienceError as e:
        raise Rejected("audience", e)
    except pyjwt.PyJWTError as e:
        raise Rejected("other", e)
    header, payload = decoded["header"], decoded["payload"]
    if header.get("alg") != alg:
        return ["header alg %r != %r" % (header.get("alg"), alg)]
    if payload.get("sub") != sub:     # PyJWT 2.6 does not check sub itself
        return ["sub %r != %r" % (payload.get("sub"), sub)]
    return []


def verify_jwcrypto(alg, keyfile, token, iss, sub, aud):
    from jwcrypto import jwk, jws
    from jwcrypto import jwt as jcjwt
    from jwcrypto.common import JWException
    with open(keyfile, "r", encoding="utf-8") as f:
        key = jwk.JWK.from_json(f.read())
    try:
        t = jcjwt.JWT(jwt=token, key=key, algs=[alg],
                      check_claims={"iss": iss, "sub": sub, "aud": aud,
                                    "exp": None, "iat": None})
    except jws.InvalidJWSSignature as e:
        raise Rejected("signature", e)
    except jcjwt.JWTInvalidClaimValue as e:
        raise Rejected("audience" if "'aud'" in str(e) else "other", e)
    except (JWException, ValueError) as e:
        raise Rejected("other", e)
    header = json.loads(t.header)
    if header.get("alg") != alg:
        return ["header alg %r != %r" % (header.get("alg"), alg)]
    return []


def verify_job(lib, alg, keyfile, tokfile, expect, aud, iss, sub):
    """Returns None on success, else the reason for failure."""
    try:
        token = read_bytes(tokfile).decode("ascii").strip()
    except OSError as e:
        return "no token (%s)" % e.strerror
    if lib == "claims":
        try:
            payload = json.loads(token)
        except ValueError as e:
            return "payload is not JSON: %s" % e
        problems = check_claims(payload, iss, sub, aud)
        return "; ".join(problems) if problems else None
    fn = {"pyjwt": verify_pyjwt, "jwcrypto": verify_jwcrypto}[lib]
    try:
        problems = fn(alg, keyfile, token, iss, sub, aud)
    except Rejected as r:
        if expect == "valid":
            return "rejected: %s" % r
        if expect == "bad-" + r.kind:
            return None
        return "rejected, but not for its %s: %s" % (expect[4:], r)
    except Exception as e:  # noqa: BLE001 - a crash is a failure, not a pass
        return "peer crashed: %s" % short(e)
    if expect != "valid":
        return "ACCEPTED a token that must fail (%s)" % expect
    return "; ".join(problems) if problems else None


def verify(jobs, iss, sub):
    with open(jobs, "r", encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            lib, alg, keyfile, tokfile, expect, aud, label = line.split("\t")
            try:
                reason = verify_job(lib, alg, keyfile, tokfile, expect, aud,
                                    iss, sub)
            except Exception:  # noqa: BLE001
                reason = "internal error: " + traceback.format_exc(
                    limit=1).strip().replace("\n", " | ")
            if reason is None:
                print("ok   " + label)
            else:
                print("FAIL %s: %s" % (label, reason))
            sys.stdout.flush()
    return 0


def main(argv):
    if len(argv) == 6 and argv[1] == "prepare":
        prepare(*argv[2:])
        return 0
    if len(argv) == 5 and argv[1] == "verify":
        return verify(*argv[2:])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
