#!/usr/bin/env python3
"""Writes the seed inputs of the two fuzz targets (fuzz/README.md).

    python3 fuzz/seeds/make_seeds.py

Standard library plus the `openssl` command (for the ES256 seeds). Each
seed is one flag byte followed by the input, as `src/fuzzing.rs` documents:

* `token`: flags (bits 0-1 mode: 0 raw token, 2 payload signed under the
  default header, 3 `header\\npayload` signed; bit 2 HS384 client; bit 3
  ES256 client; bit 4 audience; bits 5-6 signing key; bit 7 tamper), then the
  token or JSON.
* `claims_to_user`: flags (bit 0 auto-provisioning; bit 1 globex-host; bit 2
  company separation; bit 3 unknown default account type; bit 4 fill in
  jti/iat/exp; bit 5 globex-report; bit 6 draft tag; bit 7 audience), then
  a JSON payload.

Deterministic except for the ES256 signatures (ECDSA is randomised); they
stay valid forever because the targets' clock is frozen at NOW.
Seeds go to fuzz/corpus/<target>/seed_*; fuzzing adds (and `cargo fuzz
cmin` prunes) the rest.
"""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import tempfile

NOW = 1800000000
HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(os.path.dirname(HERE), "corpus")

HS256_SECRET = b"acme-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
HS256_PREVIOUS = b"acme-previous-secret-0123456789-abcdefghijklmn"
HS256_EXPIRED = b"acme-expired-secret-0123456789-abcdefghijklmno"
HS384_SECRET = b"hs384-secret-0123456789-abcdefghijklmnopqrstuvwxyz-0123456789"
ES256_KEY = os.path.join(HERE, "es256_private.pem")

# token flags
RAW, SIGNED, SIGNED_HEADER = 0, 2, 3
HS384_CLIENT, ES256_CLIENT, AUDIENCE = 0x04, 0x08, 0x10
KEY_PREVIOUS, KEY_EXPIRED, KEY_HS384 = 0x20, 0x40, 0x60
TAMPER = 0x80

# claims_to_user flags
AUTO, GLOBEX, SEPARATION, GHOST_DEFAULT, FILL = 0x01, 0x02, 0x04, 0x08, 0x10
GLOBEX_REPORT, DRAFT, AUD = 0x20, 0x40, 0x80


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def hs(header: bytes, payload: bytes, secret: bytes, digest=hashlib.sha256) -> str:
    signing_input = f"{b64(header)}.{b64(payload)}"
    sig = hmac.new(secret, signing_input.encode("ascii"), digest).digest()
    return f"{signing_input}.{b64(sig)}"


def der_to_raw(der: bytes) -> bytes:
    """An ECDSA DER signature (SEQUENCE of two INTEGERs) as r || s."""
    assert der[0] == 0x30
    i = 2
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        value = der[i + 2 : i + 2 + n].lstrip(b"\x00")
        out += value.rjust(32, b"\x00")
        i += 2 + n
    return out


def es256(header: bytes, payload: bytes) -> str:
    signing_input = f"{b64(header)}.{b64(payload)}".encode("ascii")
    with tempfile.NamedTemporaryFile() as f:
        f.write(signing_input)
        f.flush()
        der = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", ES256_KEY, f.name],
            check=True,
            capture_output=True,
        ).stdout
    return f"{signing_input.decode()}.{b64(der_to_raw(der))}"


def header(alg="HS256", kid="acme-host", **extra) -> bytes:
    h = {"alg": alg, "kid": kid, "typ": "JWT"}
    h.update(extra)
    return compact(h)


def claims(jti="seed", **extra):
    c = {
        "sub": "ana@acme.example",
        "jti": jti,
        "iat": NOW,
        "exp": NOW + 300,
        "teams": ["Acme Analysts"],
        "user_attributes": {"company": "acme"},
    }
    for k, v in extra.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def token_seeds():
    H = header()
    P = compact(claims())
    raw = lambda t, flags=RAW: bytes([flags]) + t.encode()  # noqa: E731
    signed = lambda p, flags=SIGNED: bytes([flags]) + p  # noqa: E731
    yield "valid_hs256", raw(hs(H, P, HS256_SECRET), RAW | HS384_CLIENT | ES256_CLIENT)
    yield "previous_secret", raw(hs(H, P, HS256_PREVIOUS))
    yield "expired_secret", raw(hs(H, P, HS256_EXPIRED))
    yield "expired", raw(hs(H, compact(claims(iat=NOW - 900, exp=NOW - 600)), HS256_SECRET))
    yield "not_yet_valid", raw(hs(H, compact(claims(nbf=NOW + 600)), HS256_SECRET))
    yield "alg_none", raw(f"{b64(header(alg='none'))}.{b64(P)}.")
    yield "alg_lowercase", raw(hs(header(alg="hs256"), P, HS256_SECRET))
    yield "dup_payload_key", raw(
        hs(H, b'{"sub":"ana@acme.example","sub":"eve@acme.example","jti":"d","iat":1800000000,"exp":1800000300}', HS256_SECRET)
    )
    yield "dup_header_key", raw(hs(b'{"alg":"HS256","kid":"acme-host","kid":"es256-host"}', P, HS256_SECRET))
    yield "crit", raw(hs(header(crit=["exp"]), P, HS256_SECRET))
    yield "typ_jws", raw(hs(header(typ="JWS"), P, HS256_SECRET))
    yield "huge_numbers", raw(
        hs(H, b'{"sub":"ana@acme.example","jti":"h","iat":-9223372036854775808,"exp":99999999999999999999999,"nbf":1e400,"session_length":9223372036854775807}', HS256_SECRET)
    )
    yield "two_segments", raw(f"{b64(H)}.{b64(P)}")
    yield "padded", raw(hs(H, P, HS256_SECRET) + "=")
    yield "valid_hs384", raw(
        hs(header(alg="HS384", kid="hs384-host"), P, HS384_SECRET, hashlib.sha384), RAW | HS384_CLIENT
    )
    es_h = header(alg="ES256", kid="es256-host")
    es_token = es256(es_h, P)
    yield "valid_es256", raw(es_token, RAW | ES256_CLIENT)
    yield "es256_short_sig", raw(es_token[:-10], RAW | ES256_CLIENT)
    yield "es256_with_hs_alg", raw(hs(header(kid="es256-host"), P, HS256_SECRET), RAW | ES256_CLIENT)
    yield "audience", raw(hs(H, compact(claims(aud=["other", "embedgate"])), HS256_SECRET), RAW | AUDIENCE)
    yield "unknown_kid", raw(hs(header(kid="nobody"), P, HS256_SECRET))
    # signed modes: the target signs the JSON itself
    yield "signed_full", signed(
        compact(
            claims(
                email="ANA@acme.example",
                iss="acme-host",
                ver="1.1",
                first_name="Ana",
                last_name="Lima",
                account_type="Explorer",
                session_length=600,
                nbf=NOW - 10,
            )
        )
    )
    yield "signed_minimal", signed(b'{"email":"x@y.co","jti":"m","iat":1800000000,"exp":1800000001}')
    yield "signed_previous_key", signed(P, SIGNED | KEY_PREVIOUS)
    yield "signed_expired_key", signed(P, SIGNED | KEY_EXPIRED)
    yield "signed_hs384", signed(P, SIGNED | HS384_CLIENT | KEY_HS384)
    yield "signed_tampered", signed(P, SIGNED | TAMPER)
    yield "signed_aud", signed(compact(claims(aud="embedgate")), SIGNED | AUDIENCE)
    yield "signed_header", bytes([SIGNED_HEADER]) + header(jku="https://evil.example/jwks", x5u="https://evil.example/x5u") + b"\n" + P
    yield "signed_bad_types", signed(
        compact(claims(exp="1800000300", teams="a,b", user_attributes={"bad name": "x"}))
    )
    yield "signed_many_teams", signed(compact(claims(teams=[f"t{i}" for i in range(101)])))
    yield "signed_lifetime", signed(compact(claims(iat=NOW - 10, exp=NOW + 3600)))
    yield "signed_floats", signed(b'{"sub":"a@b.co","jti":"f","iat":1.8e9,"exp":1800000300.0}')


def ctu_seeds():
    def seed(flags, payload):
        return bytes([flags]) + (compact(payload) if not isinstance(payload, bytes) else payload)

    full = lambda **kw: claims(jti="u", **kw)  # noqa: E731
    short = lambda **kw: {k: v for k, v in claims(**kw).items() if k not in ("jti", "iat", "exp")}  # noqa: E731
    yield "new_user", seed(AUTO | FILL, short(sub="new@acme.example", teams=["Acme Analysts"]))
    yield "new_user_full", seed(AUTO, full(sub="new@acme.example", first_name="N", last_name="U", account_type="Explorer"))
    yield "update_ana", seed(AUTO | FILL, short(teams=["Acme Managers", "Acme Analysts"], account_type="Explorer", user_attributes={"company": "acme2", "region": "eu"}))
    yield "adopt_unbound", seed(AUTO | FILL, short(sub="unbound@acme.example", teams=["Acme Analysts"]))
    yield "deactivated", seed(AUTO | FILL, short(sub="gone@acme.example"))
    yield "other_clients_user", seed(AUTO | FILL, short(sub="bob@globex.example", teams=["Acme Analysts"]))
    yield "internal_via_globex", seed(AUTO | GLOBEX | FILL, short(sub="Admin@Corp.example", teams=["Globex"], account_type="Viewer"))
    yield "internal_via_acme", seed(AUTO | FILL, short(sub="admin@corp.example"))
    yield "team_not_allowed", seed(AUTO | FILL, short(sub="new@acme.example", teams=["Globex"]))
    yield "unknown_team", seed(AUTO | GLOBEX | FILL, short(sub="new@globex.example", teams=["Nope"]))
    yield "empty_teams", seed(AUTO | FILL, short(teams=[]))
    yield "ghost_default", seed(AUTO | GHOST_DEFAULT | FILL, short(sub="new@acme.example"))
    yield "auto_off_new", seed(FILL, short(sub="new@acme.example"))
    yield "auto_off_adopt", seed(FILL, short(sub="unbound@acme.example", teams=["Acme Managers"]))
    yield "separation_draft", seed(AUTO | SEPARATION | DRAFT | FILL, short(user_attributes={"company": ""}))
    yield "separation_sales", seed(AUTO | SEPARATION | FILL, short(teams=["Acme Analysts", "Acme Managers"]))
    yield "company_required", seed(AUTO | SEPARATION | FILL, short(sub="new@acme.example", user_attributes={"company": ""}))
    yield "access_denied", seed(AUTO | GLOBEX_REPORT | FILL, short(sub="new@acme.example", teams=["Acme Managers"]))
    yield "globex_report", seed(AUTO | GLOBEX | GLOBEX_REPORT | SEPARATION | FILL, short(sub="bob@globex.example", teams=["Globex", "Staff"]))
    yield "audience", seed(AUTO | AUD, full(aud=["embedgate"]))
    yield "no_fill", seed(AUTO, short())


def main():
    for target, seeds in (("token", token_seeds()), ("claims_to_user", ctu_seeds())):
        folder = os.path.join(CORPUS, target)
        os.makedirs(folder, exist_ok=True)
        for name, data in seeds:
            with open(os.path.join(folder, f"seed_{name}"), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
