"""Peer half of the tokctl JWE interop test: jwcrypto 1.1 (Debian python3-jwcrypto).

Run with /usr/bin/python3 -I (the Debian interpreter that has python3-jwcrypto; -I keeps
PYTHONPATH and the script directory out of sys.path).

Subcommands (driven by jwe_run.sh, usable on their own for debugging):

  jwe_peer.py encrypt DIR JOBS
      JOBS is a tab-separated file, one job per line:
        KEYNAME  KEYSPEC  ALG  ENC  TOKENFILE
      KEYSPEC says which key jwcrypto generates for KEYNAME (once per name):
        RSA:2048 | EC:P-256 | OKP:X25519 | oct:BITS | password
      "password" uses DIR/password (the shared PBES2 passphrase) as an oct key.
      Writes DIR/peer-KEYNAME.jwk (private JWK, with "kid") the first time a name is seen,
      encrypts DIR/plain.bin to the public key with ALG/ENC (kid in the protected header,
      compact serialization) and writes DIR/TOKENFILE.
      Prints a FAIL line for any job that fails (successful jobs are silent).

  jwe_peer.py decrypt DIR JOBS
      JOBS lines: KEYFILE  ALG  ENC  TOKENFILE  LABEL
      KEYFILE is a private JWK written by tokctl, or "password" for DIR/password.
      jwcrypto decrypts DIR/TOKENFILE and checks the protected header's alg/enc and that the
      plaintext equals DIR/plain.bin byte for byte.
      Prints one line per job: "ok   LABEL" or "FAIL LABEL: reason".

  jwe_peer.py nested DIR ENCKEY SIGKEY TOKENFILE LABEL
      TOKENFILE holds a nested JWT (JWE with cty JWT around a JWS) from tokctl. jwcrypto decrypts
      it with the private JWK ENCKEY, checks cty, verifies the inner JWS with the public JWK
      SIGKEY and checks its claims (DIR/claims.json: every member must match).
"""

import base64
import json
import os
import sys
import traceback

from jwcrypto import jwe, jwk, jws
from jwcrypto.common import json_decode

ALLOWED = [
    "RSA-OAEP", "RSA-OAEP-256", "ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A256KW",
    "A128KW", "A256KW", "dir", "PBES2-HS256+A128KW", "PBES2-HS512+A256KW",
    "A128GCM", "A256GCM", "A128CBC-HS256", "A256CBC-HS512",
]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def jobs(path):
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                yield line.split("\t")


def password_key(directory):
    pw = read_bytes(os.path.join(directory, "password"))
    return jwk.JWK(kty="oct", k=b64url(pw))


def generate(spec, name):
    kind, _, param = spec.partition(":")
    if kind == "RSA":
        key = jwk.JWK.generate(kty="RSA", size=int(param))
    elif kind == "EC":
        key = jwk.JWK.generate(kty="EC", crv=param)
    elif kind == "OKP":
        key = jwk.JWK.generate(kty="OKP", crv=param)
    elif kind == "oct":
        key = jwk.JWK.generate(kty="oct", size=int(param))
    else:
        raise ValueError("unknown key spec " + spec)
    # kid = "peer-<name>"; jwcrypto keeps it in the JWK and we put it in the header.
    data = json.loads(key.export(private_key=True))
    data["kid"] = "peer-" + name
    return jwk.JWK(**data)


def cmd_encrypt(directory, jobs_file):
    plain = read_bytes(os.path.join(directory, "plain.bin"))
    keys = {}
    for keyname, spec, alg, enc, tokenfile in jobs(jobs_file):
        label = "jwcrypto encrypt %s %s (%s)" % (alg, enc, keyname)
        try:
            if spec == "password":
                key = password_key(directory)
                public = key
                header = {"alg": alg, "enc": enc}
            else:
                if keyname not in keys:
                    keys[keyname] = generate(spec, keyname)
                    with open(os.path.join(directory, "peer-%s.jwk" % keyname), "w") as f:
                        f.write(keys[keyname].export(private_key=True))
                key = keys[keyname]
                public = key if spec.startswith("oct") else jwk.JWK(**json.loads(key.export_public()))
                header = {"alg": alg, "enc": enc, "kid": key.key_id}
            token = jwe.JWE(plain, protected=json.dumps(header))
            token.allowed_algs = ALLOWED
            token.add_recipient(public)
            with open(os.path.join(directory, tokenfile), "w") as f:
                f.write(token.serialize(compact=True))
        except Exception as e:  # noqa: BLE001 - report every failure as a FAIL line
            print("FAIL %s: %s: %s" % (label, type(e).__name__, e))
            traceback.print_exc(file=sys.stderr)


def cmd_decrypt(directory, jobs_file):
    plain = read_bytes(os.path.join(directory, "plain.bin"))
    for keyfile, alg, enc, tokenfile, label in jobs(jobs_file):
        try:
            if keyfile == "password":
                key = password_key(directory)
            else:
                key = jwk.JWK(**json.loads(read_bytes(os.path.join(directory, keyfile))))
            text = read_bytes(os.path.join(directory, tokenfile)).decode().strip()
            token = jwe.JWE()
            token.allowed_algs = ALLOWED
            token.deserialize(text, key=key)
            header = json_decode(token.objects["protected"])
            if header.get("alg") != alg or header.get("enc") != enc:
                raise ValueError("header has alg %r enc %r" % (header.get("alg"), header.get("enc")))
            if token.payload != plain:
                raise ValueError("plaintext differs (%d bytes, expected %d)" % (len(token.payload), len(plain)))
            print("ok   " + label)
        except Exception as e:  # noqa: BLE001
            print("FAIL %s: %s: %s" % (label, type(e).__name__, e))


def cmd_nested(directory, enc_key, sig_key, tokenfile, label):
    try:
        key = jwk.JWK(**json.loads(read_bytes(os.path.join(directory, enc_key))))
        verifier = jwk.JWK(**json.loads(read_bytes(os.path.join(directory, sig_key))))
        text = read_bytes(os.path.join(directory, tokenfile)).decode().strip()
        outer = jwe.JWE()
        outer.allowed_algs = ALLOWED
        outer.deserialize(text, key=key)
        header = json_decode(outer.objects["protected"])
        if header.get("cty", "").upper() != "JWT":
            raise ValueError("outer cty is %r, expected JWT" % header.get("cty"))
        inner = jws.JWS()
        inner.deserialize(outer.payload.decode())
        inner.verify(verifier)
        claims = json.loads(inner.payload)
        expected = json.loads(read_bytes(os.path.join(directory, "claims.json")))
        for name, value in expected.items():
            if claims.get(name) != value:
                raise ValueError("claim %s is %r, expected %r" % (name, claims.get(name), value))
        print("ok   " + label)
    except Exception as e:  # noqa: BLE001
        print("FAIL %s: %s: %s" % (label, type(e).__name__, e))


def main(argv):
    if len(argv) >= 3 and argv[0] == "encrypt":
        cmd_encrypt(argv[1], argv[2])
    elif len(argv) >= 3 and argv[0] == "decrypt":
        cmd_decrypt(argv[1], argv[2])
    elif len(argv) == 6 and argv[0] == "nested":
        cmd_nested(*argv[1:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
