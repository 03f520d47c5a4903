# Independent computation of the keyhold blob v1 golden vector (Python cryptography / OpenSSL).
# Run: python3 blob_v1.py > blob_v1.json (needs `cryptography`). Kept for provenance only: the
# vector pins a persistent format and must never be regenerated with different values.
import json, struct
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

key = bytes(range(0x00, 0x20))
key_id = bytes.fromhex("1234abcd12ab34cd56ef1234567890ab")
material_id = bytes(range(0x20, 0x40))
salt = bytes(range(0x40, 0x60))
nonce = bytes(range(0x60, 0x6c))
context = {"purpose": "golden-vector", "Department": "10", "clé": "välue", "aws:ebs:id": ""}
plaintext = "Keyhold blob format v1 — golden vector".encode()

def lp(b): return struct.pack(">I", len(b)) + b
canon = b"".join(lp(k) + lp(v) for k, v in sorted(((k.encode(), v.encode()) for k, v in context.items())))
header = bytes([1]) + key_id + material_id + salt + nonce
assert len(header) == 93
dk = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"keyhold-v1" + header[:49]).derive(key)
ct = AESGCM(dk).encrypt(nonce, plaintext, header + canon)
blob = header + ct
out = {
  "description": "keyhold-crypto symmetric ciphertext blob, format version 1 (see crates/crypto/src/blob.rs)",
  "provenance": "Recorded on 2026-11-29 when blob format version 1 was created. The blob was computed independently by tests/data/blob_v1.py with Python cryptography 48.0.0 (OpenSSL: HKDF-SHA256, AESGCM) and is reproduced byte-for-byte by keyhold-crypto blob::encrypt_with (unit test in src/blob.rs); tests/blob_vector.rs re-derives it with a third, test-only computation. This vector pins a persistent format: it must NEVER change. A new format gets a new version byte and a new file.",
  "key": key.hex(), "key_id": key_id.hex(), "material_id": material_id.hex(),
  "salt": salt.hex(), "nonce": nonce.hex(), "context": context,
  "canonical_context": canon.hex(), "plaintext": plaintext.hex(),
  "derived_key": dk.hex(), "blob": blob.hex(),
}
print(json.dumps(out, indent=2, ensure_ascii=False))
