"""A stand-in identity provider for the OIDC tests: signs JWTs with joserfc (an independent
JOSE implementation), never with the library radscore verifies with.

Takes one JSON object as its argument:

  {"dir": "...",                      # where the keys live (created on first use)
   "tokens": {"name": {"kid": "k1", "alg": "RS256", "claims": {...}}, ...}}

On first use it creates three signing keys in `dir`: `k1` (RSA, RS256), `e1` (EC P-256,
ES256) and `k2` (RSA, RS256, the "rotated-in" key), and writes the public key sets
`jwks.json` (k1, e1) and `jwks-rotated.json` (k1, e1, k2). It prints {"name": "<jwt>", ...}.

`"alg": "HS256"` signs by hand with HMAC-SHA256 keyed by the RSA key's public JWK text: the
algorithm-confusion attack a verifier must refuse. `"kid": "stranger"` signs with a fresh
RSA key that no key set holds.
"""

import base64
import hashlib
import hmac
import json
import os
import sys

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_keys(directory: str) -> dict:
    path = os.path.join(directory, "private.json")
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        return {
            kid: (RSAKey if d["kty"] == "RSA" else ECKey).import_key(d)
            for kid, d in saved.items()
        }
    keys = {
        "k1": RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256", "use": "sig"}),
        "e1": ECKey.generate_key("P-256", parameters={"kid": "e1", "alg": "ES256", "use": "sig"}),
        "k2": RSAKey.generate_key(2048, parameters={"kid": "k2", "alg": "RS256", "use": "sig"}),
    }
    os.makedirs(directory, exist_ok=True)
    with open(path, "w") as f:
        json.dump({kid: k.as_dict(private=True) for kid, k in keys.items()}, f)
    public = {kid: k.as_dict(private=False) for kid, k in keys.items()}
    for name, kids in (("jwks.json", ["k1", "e1"]), ("jwks-rotated.json", ["k1", "e1", "k2"])):
        with open(os.path.join(directory, name), "w") as f:
            json.dump({"keys": [public[k] for k in kids]}, f)
    return keys


def sign(keys: dict, spec: dict) -> str:
    kid, alg, claims = spec["kid"], spec["alg"], spec["claims"]
    if alg == "HS256":
        header = {"typ": "JWT", "alg": "HS256", "kid": kid}
        secret = json.dumps(keys[kid].as_dict(private=False), sort_keys=True).encode()
        signing_input = ".".join(
            b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"
    key = keys.get(kid) or RSAKey.generate_key(2048, parameters={"kid": kid})
    header = {"alg": alg, "kid": kid}
    if spec.get("no_kid"):
        del header["kid"]
    return jwt.encode(header, claims, key)


def main() -> None:
    request = json.loads(sys.argv[1])
    keys = load_keys(request["dir"])
    print(json.dumps({name: sign(keys, spec) for name, spec in request["tokens"].items()}))


if __name__ == "__main__":
    main()
