#!/usr/bin/env python3
"""Independent implementation of the ModelSeal sealed-model format, version 1.

Written from docs/format.md alone (no look at the .NET sources), to produce the
example vectors in this directory and to prove the specification can be
implemented by an outsider.

Usage:
    python3 generate.py              write *.mseal and vectors.json (deterministic)
    python3 generate.py --check      decode every vector in vectors.json and compare
                                     with its declared outcome
    python3 generate.py --selfcheck  validate the Cobblestone-256 code against the
                                     C2SP/Wycheproof chunked-encryption vectors

Needs Python 3.11+ and the `cryptography` package.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
import zlib
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

HERE = Path(__file__).resolve().parent

# --------------------------------------------------------------------------
# Cobblestone-256 (C2SP chunked-encryption, AES-256-GCM, HKDF-SHA-512)
# --------------------------------------------------------------------------

LABEL = b"c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM"
KEY_SIZE = 32
SALT_SIZE = 24
COMMIT_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
CHUNK_PT = 16384
CHUNK_CT = CHUNK_PT + TAG_SIZE
PREFIX_SIZE = SALT_SIZE + COMMIT_SIZE  # 56
MAX_CHUNKS = 1 << 38


def hkdf_expand_sha512_manual(prk: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 section 2.3 HKDF-Expand with HMAC-SHA-512, written out by hand."""
    out = b""
    t = b""
    counter = 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([counter]), hashlib.sha512).digest()
        out += t
        counter += 1
    return out[:length]


def derive(key: bytes, salt: bytes, context: bytes) -> tuple[bytes, bytes, bytes]:
    """Return (aeadKey, baseNonce, commitment)."""
    if len(key) != KEY_SIZE:
        raise ValueError("key must be 32 bytes")
    if len(salt) != SALT_SIZE:
        raise ValueError("salt must be 24 bytes")
    info = LABEL + b"\x00" + salt + context
    okm = hkdf_expand_sha512_manual(key, info, 76)
    # Cross-check against the library implementation.
    lib = HKDFExpand(hashes.SHA512(), 76, info).derive(key)
    assert lib == okm, "HKDF-Expand mismatch between manual and library implementation"
    return okm[0:32], okm[32:44], okm[44:76]


def chunk_nonce(base_nonce: bytes, i: int) -> bytes:
    return bytes(a ^ b for a, b in zip(base_nonce, i.to_bytes(NONCE_SIZE, "big")))


def encrypt_chunks(key: bytes, context: bytes, message: bytes, salt: bytes):
    """Cobblestone-256 encryption; returns (salt, commitment, [chunk_0 .. chunk_(N-1)])."""
    aead_key, base_nonce, commitment = derive(key, salt, context)
    aead = AESGCM(aead_key)
    n = len(message) // CHUNK_PT + 1
    chunks = []
    for i in range(n):
        pt = message[i * CHUNK_PT:(i + 1) * CHUNK_PT] if i < n - 1 else message[(n - 1) * CHUNK_PT:]
        assert (i < n - 1 and len(pt) == CHUNK_PT) or (i == n - 1 and len(pt) < CHUNK_PT)
        chunks.append(aead.encrypt(chunk_nonce(base_nonce, i), pt, b""))
    return salt, commitment, chunks


def encrypt_chunk_at(key: bytes, context: bytes, salt: bytes, index: int, pt: bytes) -> bytes:
    """Encrypt one arbitrary chunk at an arbitrary index (used to build attacks)."""
    aead_key, base_nonce, _ = derive(key, salt, context)
    return AESGCM(aead_key).encrypt(chunk_nonce(base_nonce, index), pt, b"")


def cobblestone_encrypt(key: bytes, context: bytes, message: bytes, salt: bytes) -> bytes:
    s, c, chunks = encrypt_chunks(key, context, message, salt)
    return s + c + b"".join(chunks)


class CobbleError(Exception):
    def __init__(self, stage: str, reason: str):
        super().__init__(f"{stage}: {reason}")
        self.stage = stage  # "header" (before any chunk) or "chunk"
        self.reason = reason


def cobblestone_decrypt_stream(key: bytes, context: bytes, ct: bytes, out: list):
    """Generic Cobblestone-256 decryption where the message length is unknown.

    Chunks are 16400 bytes except the final one, which is shorter (16..16399
    bytes).  Appends each verified chunk plaintext to `out` (a streaming
    decoder's output) and raises CobbleError on failure.
    """
    if len(key) != KEY_SIZE:
        raise CobbleError("header", "invalid key size")
    if len(ct) < PREFIX_SIZE:
        raise CobbleError("header", "too short for salt and commitment")
    salt, stored = ct[:SALT_SIZE], ct[SALT_SIZE:PREFIX_SIZE]
    aead_key, base_nonce, commitment = derive(key, salt, context)
    if not hmac.compare_digest(commitment, stored):
        raise CobbleError("header", "commitment mismatch")
    aead = AESGCM(aead_key)
    pos = PREFIX_SIZE
    i = 0
    while True:
        if i >= MAX_CHUNKS:
            raise CobbleError("chunk", "too many chunks")
        rem = len(ct) - pos
        if rem >= CHUNK_CT:
            chunk, final = ct[pos:pos + CHUNK_CT], False
        else:
            chunk, final = ct[pos:], True
            if len(chunk) < TAG_SIZE:
                raise CobbleError("chunk", "final chunk missing or shorter than a tag")
        try:
            pt = aead.decrypt(chunk_nonce(base_nonce, i), chunk, b"")
        except InvalidTag:
            raise CobbleError("chunk", f"tag mismatch in chunk {i}") from None
        out.append(pt)
        pos += len(chunk)
        i += 1
        if final:
            return b"".join(out)


# --------------------------------------------------------------------------
# Self-check against the official C2SP / Wycheproof vectors
# --------------------------------------------------------------------------

WYCHEPROOF_CANDIDATES = [
    HERE.parent / "wycheproof" / "c2sp_chunked_encryption_aes_256_gcm_test.json",
    Path("/work/shared/vectors/wycheproof/c2sp_chunked_encryption_aes_256_gcm_test.json"),
]


def selfcheck(path: Path | None = None) -> bool:
    if path is None:
        path = next((p for p in WYCHEPROOF_CANDIDATES if p.exists()), None)
        if path is None:
            print("selfcheck: vector file not found", file=sys.stderr)
            return False
    doc = json.loads(path.read_text())
    assert doc["algorithm"] == "Cobblestone-256", doc["algorithm"]
    total = passed = 0
    for group in doc["testGroups"]:
        assert group["aead"] == "AEAD_AES_256_GCM" and group["sha"] == "SHA-512"
        for t in group["tests"]:
            total += 1
            problems = []
            key = bytes.fromhex(t["key"])
            ctx = bytes.fromhex(t["ctx"])
            ct = zlib.decompress(bytes.fromhex(t["ct"]))
            flags = set(t["flags"])
            # Derived keys, where given.
            if "aeadKey" in t or "baseNonce" in t:
                ak, bn, _ = derive(key, ct[:SALT_SIZE], ctx)
                if "aeadKey" in t and ak.hex() != t["aeadKey"]:
                    problems.append("aeadKey differs")
                if "baseNonce" in t and bn.hex() != t["baseNonce"]:
                    problems.append("baseNonce differs")
            out: list[bytes] = []
            try:
                msg = cobblestone_decrypt_stream(key, ctx, ct, out)
                err = None
            except CobbleError as e:
                msg, err = None, e
            prefix = b"".join(out)
            if t["result"] == "valid":
                if err is not None:
                    problems.append(f"valid vector rejected ({err})")
                else:
                    if len(msg) != t["msgLength"]:
                        problems.append(f"length {len(msg)} != {t['msgLength']}")
                    if hashlib.sha512(msg).hexdigest() != t["msgSha512"]:
                        problems.append("SHA-512 differs")
            else:
                if err is None:
                    problems.append("invalid vector accepted")
                else:
                    if "HeaderFailure" in flags and err.stage != "header":
                        problems.append(f"expected failure before any chunk, got {err}")
                    # Streaming prefix released before the failure.
                    exp_len = t.get("msgLength", 0)
                    if len(prefix) != exp_len:
                        problems.append(f"released prefix {len(prefix)} != {exp_len}")
                    elif "msgSha512" in t and hashlib.sha512(prefix).hexdigest() != t["msgSha512"]:
                        problems.append("released prefix SHA-512 differs")
                if "ValidFinalChunk" in flags:
                    # Random-access: the final chunk alone at its index verifies.
                    body = len(ct) - PREFIX_SIZE
                    idx, rem = divmod(body, CHUNK_CT)
                    ak, bn, _ = derive(key, ct[:SALT_SIZE], ctx)
                    try:
                        AESGCM(ak).decrypt(chunk_nonce(bn, idx), ct[len(ct) - rem:], b"")
                    except InvalidTag:
                        problems.append("ValidFinalChunk: final chunk did not verify")
            status = "ok  " if not problems else "FAIL"
            if problems:
                print(f"  {status} tcId {t['tcId']:3d} {t['comment']}: {'; '.join(problems)}")
            else:
                passed += 1
    print(f"selfcheck: {passed}/{total} Cobblestone-256 vectors passed ({path})")
    return passed == total


# --------------------------------------------------------------------------
# ModelSeal format v1
# --------------------------------------------------------------------------

MAGIC = b"\x89MSEAL\r\n"
VERSION = 1
MIN_H, MAX_H = 12, 4096
MAX_L = (1 << 52) - 1
MAX_SEALED_AT = 253402300799  # 9999-12-31T23:59:59Z (section 1.1: 0 <= sealed at <= this)

TAG_MODEL_ID = 0x0001
TAG_MODEL_VERSION = 0x0002
TAG_KEY_ID = 0x0003
TAG_CONTENT_TYPE = 0x0004
TAG_PLAINTEXT_LENGTH = 0x0005
TAG_SEALED_AT = 0x8001

CONTENT_TYPES = {0: "unknown", 1: "onnx", 2: "ort", 3: "tflite"}
CONTENT_TYPE_CODES = {v: k for k, v in CONTENT_TYPES.items()}

ID_FIRST = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
ID_REST = ID_FIRST | set(b"._-")


class SealError(Exception):
    def __init__(self, cls: str, reason: str):
        super().__init__(f"{cls}: {reason}")
        self.cls = cls  # not-sealed | unsupported-version | malformed-header | authentication | key-mismatch
        self.reason = reason


def _identifier(value: bytes, max_len: int, name: str) -> str:
    if not 1 <= len(value) <= max_len:
        raise SealError("malformed-header", f"rule 6: {name} must be 1-{max_len} bytes, is {len(value)}")
    if value[0] not in ID_FIRST or any(b not in ID_REST for b in value[1:]):
        raise SealError("malformed-header", f"rule 6: {name} is not a valid identifier: {value!r}")
    return value.decode("ascii")


def parse_header(data: bytes) -> tuple[dict, int]:
    """Steps 1-4 of section 3. Returns (header dict, H)."""
    # Step 1
    if len(data) < 8 or data[:8] != MAGIC:
        raise SealError("not-sealed", "missing magic")
    # Step 2 (the spec does not say what a file that ends inside the version or
    # H field is; treated here as a malformed header)
    if len(data) < 10:
        raise SealError("malformed-header", "file ends inside the version field")
    version = int.from_bytes(data[8:10], "big")
    if version != VERSION:
        raise SealError("unsupported-version", f"version {version} found, only {VERSION} is supported")
    # Step 3
    if len(data) < 12:
        raise SealError("malformed-header", "file ends inside the header length field")
    h = int.from_bytes(data[10:12], "big")
    if h < MIN_H or h > MAX_H:
        raise SealError("malformed-header", f"header length {h} outside 12..4096")
    if len(data) < h:
        raise SealError("malformed-header", f"header length {h} exceeds file size {len(data)}")
    # Step 4
    pos = 12
    last_tag = -1
    values: dict[int, bytes] = {}
    while pos < h:
        if pos + 4 > h:
            raise SealError("malformed-header", "rule 5: field tag/length runs past H")
        tag = int.from_bytes(data[pos:pos + 2], "big")
        n = int.from_bytes(data[pos + 2:pos + 4], "big")
        if pos + 4 + n > h:
            raise SealError("malformed-header", f"rule 5: field 0x{tag:04x} runs past H")
        value = data[pos + 4:pos + 4 + n]
        pos += 4 + n
        if tag == 0:
            raise SealError("malformed-header", "rule 2: tag 0x0000 is reserved")
        if tag <= last_tag:
            raise SealError("malformed-header", f"rule 1: tag 0x{tag:04x} not in strictly increasing order")
        last_tag = tag
        known = tag in (TAG_MODEL_ID, TAG_MODEL_VERSION, TAG_KEY_ID, TAG_CONTENT_TYPE,
                        TAG_PLAINTEXT_LENGTH, TAG_SEALED_AT)
        if not known:
            if tag <= 0x7FFF:
                raise SealError("malformed-header", f"rule 3: unknown critical tag 0x{tag:04x}")
            continue  # rule 4: skip unknown non-critical field
        values[tag] = value
    assert pos == h
    hdr: dict = {}
    for tag, name in ((TAG_MODEL_ID, "model id"), (TAG_MODEL_VERSION, "model version"),
                      (TAG_KEY_ID, "key id"), (TAG_CONTENT_TYPE, "content type"),
                      (TAG_PLAINTEXT_LENGTH, "plaintext length")):
        if tag not in values:
            raise SealError("malformed-header", f"rule 6: required field {name} (0x{tag:04x}) missing")
    hdr["modelId"] = _identifier(values[TAG_MODEL_ID], 128, "model id")
    hdr["modelVersion"] = _identifier(values[TAG_MODEL_VERSION], 64, "model version")
    hdr["keyId"] = _identifier(values[TAG_KEY_ID], 128, "key id")
    ct = values[TAG_CONTENT_TYPE]
    if len(ct) != 1:
        raise SealError("malformed-header", f"rule 6: content type must be 1 byte, is {len(ct)}")
    if ct[0] not in CONTENT_TYPES:
        raise SealError("malformed-header", f"rule 6: content type {ct[0]} unknown")
    hdr["contentType"] = CONTENT_TYPES[ct[0]]
    pl = values[TAG_PLAINTEXT_LENGTH]
    if len(pl) != 8:
        raise SealError("malformed-header", f"rule 6: plaintext length must be 8 bytes, is {len(pl)}")
    length = int.from_bytes(pl, "big")
    if length > MAX_L:
        raise SealError("malformed-header", f"rule 6: plaintext length {length} > 2^52-1")
    hdr["plaintextLength"] = length
    if TAG_SEALED_AT in values:
        if len(values[TAG_SEALED_AT]) != 8:
            raise SealError("malformed-header",
                            f"rule 6: sealed-at must be 8 bytes, is {len(values[TAG_SEALED_AT])}")
        sealed_at = int.from_bytes(values[TAG_SEALED_AT], "big")
        if sealed_at > MAX_SEALED_AT:
            raise SealError("malformed-header",
                            f"rule 6: sealed-at {sealed_at} > {MAX_SEALED_AT} (9999-12-31T23:59:59Z)")
    else:
        sealed_at = None
    hdr["headerLength"] = h
    hdr["sealedAt"] = sealed_at
    return hdr, sealed_at


def open_sealed(data: bytes, key: bytes, key_id: str) -> tuple[dict, bytes]:
    """Full decoding per section 3. Returns (header dict, plaintext); raises SealError."""
    hdr, _ = parse_header(data)
    h = hdr["headerLength"]
    context = data[:h]  # the bytes as read, never a re-encoding
    # Step 5
    if hdr["keyId"] != key_id:
        raise SealError("key-mismatch", f"file needs key {hdr['keyId']!r}, given {key_id!r}")
    if len(key) != KEY_SIZE:
        raise SealError("authentication", "bad key size")
    # Step 6
    if len(data) < h + PREFIX_SIZE:
        raise SealError("authentication", "[internal: salt/commitment truncated]")
    salt = data[h:h + SALT_SIZE]
    stored = data[h + SALT_SIZE:h + PREFIX_SIZE]
    aead_key, base_nonce, commitment = derive(key, salt, context)
    if not hmac.compare_digest(commitment, stored):
        raise SealError("authentication", "[internal: commitment mismatch]")
    # Step 7
    length = hdr["plaintextLength"]
    n = length // CHUNK_PT + 1
    aead = AESGCM(aead_key)
    out = []
    pos = h + PREFIX_SIZE
    for i in range(n):
        size = CHUNK_CT if i < n - 1 else length % CHUNK_PT + TAG_SIZE
        if pos + size > len(data):
            raise SealError("authentication", f"[internal: chunk {i} truncated]")
        try:
            out.append(aead.decrypt(chunk_nonce(base_nonce, i), data[pos:pos + size], b""))
        except InvalidTag:
            raise SealError("authentication", f"[internal: chunk {i} tag mismatch]") from None
        pos += size
    # Step 8
    if pos != len(data):
        raise SealError("authentication", f"[internal: {len(data) - pos} trailing bytes]")
    return hdr, b"".join(out)


# ---- content-type detection (section 4) ----

ONNX_VARINT_FIELDS = {1, 5}
ONNX_LEN_FIELDS = {2, 3, 4, 6, 7, 8, 14, 20, 25, 26}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("bad varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def looks_like_onnx(m: bytes) -> bool:
    limit = min(len(m), 65536)
    pos = 0
    first = True
    try:
        while pos < limit:
            key, pos = _varint(m, pos)
            field, wire = key >> 3, key & 7
            if first:
                if field != 1 or wire != 0:
                    return False
                v, pos = _varint(m, pos)
                if not 1 <= v <= 255:
                    return False
                first = False
                continue
            if field in ONNX_VARINT_FIELDS:
                if wire != 0:
                    return False
                _, pos = _varint(m, pos)
            elif field in ONNX_LEN_FIELDS:
                if wire != 2:
                    return False
                n, pos = _varint(m, pos)
                if pos + n > len(m):
                    return False
                pos += n
            else:
                return False
    except ValueError:
        return False
    return not first


def detect_content_type(m: bytes) -> str:
    if len(m) >= 8 and m[4:8] == b"TFL3":
        return "tflite"
    if len(m) >= 8 and m[4:8] == b"ORTM":
        return "ort"
    if looks_like_onnx(m):
        return "onnx"
    return "unknown"


# ---- encoding ----

def field(tag: int, value: bytes, declared_len: int | None = None) -> bytes:
    n = len(value) if declared_len is None else declared_len
    return tag.to_bytes(2, "big") + n.to_bytes(2, "big") + value


def header_bytes(fields: list[bytes], version: int = VERSION, h: int | None = None,
                 magic: bytes = MAGIC) -> bytes:
    body = b"".join(fields)
    if h is None:
        h = 12 + len(body)
    return magic + version.to_bytes(2, "big") + h.to_bytes(2, "big") + body


def std_fields(model_id: str, model_version: str, key_id: str, content_type: str, length: int,
               sealed_at: int | None, extra: list[tuple[int, bytes]] = ()) -> list[bytes]:
    items = [
        (TAG_MODEL_ID, model_id.encode()),
        (TAG_MODEL_VERSION, model_version.encode()),
        (TAG_KEY_ID, key_id.encode()),
        (TAG_CONTENT_TYPE, bytes([CONTENT_TYPE_CODES[content_type]])),
        (TAG_PLAINTEXT_LENGTH, length.to_bytes(8, "big")),
    ]
    if sealed_at is not None:
        items.append((TAG_SEALED_AT, sealed_at.to_bytes(8, "big")))
    items.extend(extra)
    items.sort(key=lambda kv: kv[0])
    return [field(t, v) for t, v in items]


def seal(key: bytes, key_id: str, model_id: str, model_version: str, plaintext: bytes,
         salt: bytes, sealed_at: int | None, extra: list[tuple[int, bytes]] = ()) -> tuple[bytes, dict]:
    content_type = detect_content_type(plaintext)
    hdr = header_bytes(std_fields(model_id, model_version, key_id, content_type, len(plaintext),
                                  sealed_at, extra))
    info = {"modelId": model_id, "modelVersion": model_version, "keyId": key_id,
            "contentType": content_type, "plaintextLength": len(plaintext),
            "headerLength": len(hdr), "sealedAt": sealed_at}
    return hdr + cobblestone_encrypt(key, hdr, plaintext, salt), info


# --------------------------------------------------------------------------
# Vector generation
# --------------------------------------------------------------------------

def det_bytes(label: str, n: int) -> bytes:
    """Deterministic pseudo-random bytes (SHAKE-256 of a label)."""
    return hashlib.shake_256(b"modelseal-vectors/" + label.encode()).digest(n)


def det_salt(label: str) -> bytes:
    return hashlib.sha256(b"modelseal-vectors/salt/" + label.encode()).digest()[:SALT_SIZE]


KEY = hashlib.sha256(b"modelseal-vectors/key/test-key-1").digest()
KEY_ID = "test-key-1"
WRONG_KEY = hashlib.sha256(b"modelseal-vectors/key/wrong-key").digest()
SEALED_AT = 1700000000  # 2023-11-14T22:13:20Z, fixed for reproducibility


def onnx_like(label: str, total: int) -> bytes:
    """A byte string that starts like an onnx.ModelProto and parses as one throughout."""
    head = (b"\x08\x07"                      # field 1 ir_version = 7 (varint)
            + b"\x12\x07pytorch"             # field 2 producer_name (string)
            + b"\x1a\x052.1.0"               # field 3 producer_version (string)
            + b"\x28\x01")                   # field 5 model_version = 1 (varint)
    opset = b"\x42\x04\x10\x11\x0a\x00"      # field 8 opset_import (len 4)
    # field 7 graph (length-delimited) filling the remainder
    remaining = total - len(head) - len(opset)
    # solve for graph length with its varint length prefix
    for vlen in (1, 2, 3):
        glen = remaining - 1 - vlen
        if glen >= 0 and len(_enc_varint(glen)) == vlen:
            break
    else:
        raise ValueError("size")
    graph = b"\x3a" + _enc_varint(glen) + det_bytes(label + "/graph", glen)
    m = head + graph + opset
    assert len(m) == total
    return m


def _enc_varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def build_vectors() -> list[tuple[str, bytes, dict]]:
    """Returns a list of (filename, file bytes, manifest entry)."""
    vecs: list[tuple[str, bytes, dict]] = []

    def add(name, data, expect, header, plaintext, comment, key=KEY, key_id=KEY_ID):
        entry = {
            "file": name,
            "key": key.hex(),
            "keyId": key_id,
            "expect": expect,
            "header": header,
            "plaintextSha256": hashlib.sha256(plaintext).hexdigest() if expect == "ok" else None,
            "comment": comment,
        }
        vecs.append((name, data, entry))

    def ok(name, plaintext, comment, model_id="example-model", model_version="1.0.0",
           sealed_at=SEALED_AT, extra=(), key_id=KEY_ID, expect_type=None):
        data, info = seal(KEY, key_id, model_id, model_version, plaintext, det_salt(name),
                          sealed_at, list(extra))
        if expect_type is not None:
            assert info["contentType"] == expect_type, (name, info["contentType"])
        add(name, data, "ok", info, plaintext, comment, key_id=key_id)
        return data, info

    # ---------------- valid ----------------
    ok("ok-empty.mseal", b"",
       "Valid. Empty model (L = 0): the payload is salt, commitment and one empty final chunk "
       "of just a 16-byte tag (N = 1).")
    ok("ok-1-byte.mseal", det_bytes("ok-1-byte", 1),
       "Valid. 1-byte model: one final chunk of 17 bytes.")
    ok("ok-16384.mseal", det_bytes("ok-16384", 16384),
       "Valid. Exactly 16384 bytes: one full 16400-byte chunk followed by an empty final chunk "
       "(16-byte tag only), N = 2.")
    ok("ok-16385.mseal", det_bytes("ok-16385", 16385),
       "Valid. 16385 bytes: one full chunk and a final chunk holding 1 byte (17 bytes).")
    ok("ok-40000.mseal", det_bytes("ok-40000", 40000),
       "Valid. 40000 bytes: two full chunks and a final chunk of 7232 + 16 bytes (N = 3).")
    tfl = det_bytes("ok-tflite/a", 4) + b"TFL3" + det_bytes("ok-tflite/b", 1992)
    ok("ok-tflite.mseal", tfl,
       "Valid. 2000-byte plaintext with 'TFL3' at bytes 4..7; content type 3 (tflite).",
       model_id="mobilenet-v2", model_version="2024.1", expect_type="tflite")
    ok("ok-onnx.mseal", onnx_like("ok-onnx", 3000),
       "Valid. 3000-byte plaintext that parses as an onnx.ModelProto (08 07 ir_version, field 2 "
       "producer_name, field 3, field 5 varint, field 7 graph, field 8 opset_import); "
       "content type 1 (onnx).",
       model_id="resnet50", model_version="1.2", expect_type="onnx")
    ort = det_bytes("ok-ort/a", 4) + b"ORTM" + det_bytes("ok-ort/b", 1492)
    ok("ok-ort.mseal", ort,
       "Valid. 1500-byte plaintext with 'ORTM' at bytes 4..7; content type 2 (ort).",
       model_id="squeezenet", model_version="1.1", expect_type="ort")
    ok("ok-unknown-noncritical-9000.mseal", det_bytes("ok-unk-9000", 700),
       "Valid. Header carries an unknown non-critical field, tag 0x9000 with a 10-byte value, "
       "after 0x8001; a decoder must skip it (but its bytes are part of the authenticated "
       "context).",
       extra=[(0x9000, b"extension!")])
    ok("ok-noncritical-boundary-tags.mseal", det_bytes("ok-nc-boundary", 300),
       "Valid. Unknown non-critical fields at the range boundaries: tag 0x8000 (empty value) "
       "before 0x8001, and tag 0xFFFF (3-byte value) last; both must be skipped.",
       extra=[(0x8000, b""), (0xFFFF, b"\x00\x01\x02")])
    ok("ok-no-sealed-at.mseal", det_bytes("ok-no-sealed-at", 500),
       "Valid. The optional sealed-at field 0x8001 is absent; header is only the five required "
       "fields.",
       sealed_at=None)
    ok("ok-sealed-at.mseal", det_bytes("ok-sealed-at", 500),
       "Valid. Carries the optional sealed-at field 0x8001 = 1700000000 "
       "(2023-11-14T22:13:20Z).",
       sealed_at=SEALED_AT)
    ok("ok-sealed-at-0.mseal", det_bytes("ok-sealed-at-0", 100),
       "Valid. Sealed-at 0x8001 = 0 (1970-01-01T00:00:00Z), the smallest value: "
       "80 01 00 08 00 00 00 00 00 00 00 00.",
       sealed_at=0)
    ok("ok-sealed-at-max.mseal", det_bytes("ok-sealed-at-max", 100),
       "Valid. Sealed-at 0x8001 = 253402300799 (9999-12-31T23:59:59Z), the largest value: "
       "80 01 00 08 00 00 00 3A FF F4 41 7F.",
       sealed_at=MAX_SEALED_AT)
    max_model_id = ("M" + "odel.Name_with-all-chars.0123456789" * 4)[:128]
    max_version = ("9" + ".8_7-6" * 11)[:64]
    max_key_id = ("K" + "ey-ID_0.abcdefghijklmnopqrstuvwxyz" * 4)[:128]
    assert (len(max_model_id), len(max_version), len(max_key_id)) == (128, 64, 128)
    ok("ok-max-identifiers.mseal", det_bytes("ok-max-ids", 200),
       "Valid. Maximal identifier lengths: model id 128 bytes, model version 64 bytes, key id "
       "128 bytes, using letters, digits, '.', '_' and '-'. Open with the 128-byte key id.",
       model_id=max_model_id, model_version=max_version, key_id=max_key_id)
    # H = 4096 exactly: pad with an unknown non-critical field.
    base = std_fields("big-header", "1", KEY_ID, "unknown", 100, SEALED_AT)
    pad_len = MAX_H - 12 - sum(len(f) for f in base) - 4
    ok("ok-header-4096.mseal", det_bytes("ok-h4096", 100),
       f"Valid. Header length H = 4096 (the maximum), reached with an unknown non-critical "
       f"field 0xA000 of {pad_len} bytes; the whole 4096-byte header is the Cobblestone "
       f"context.",
       model_id="big-header", model_version="1",
       extra=[(0xA000, det_bytes("ok-h4096/pad", pad_len))])
    assert vecs[-1][2]["header"]["headerLength"] == 4096

    # ---------------- not sealed ----------------
    plain = onnx_like("not-sealed-onnx", 600)
    add("not-sealed-plain-onnx.mseal", plain, "not-sealed", None, b"",
        "Not sealed. A plain, unsealed 600-byte ONNX-like model (starts 08 07 12 ...), no magic.")
    add("not-sealed-5-bytes.mseal", MAGIC[:5], "not-sealed", None, b"",
        "Not sealed. A 5-byte file: the first 5 bytes of the magic (89 4D 53 45 41); fewer than "
        "8 bytes.")
    add("not-sealed-empty.mseal", b"", "not-sealed", None, b"",
        "Not sealed. An empty (0-byte) file.")
    good, _ = seal(KEY, KEY_ID, "example-model", "1.0.0", det_bytes("ns-textmode", 100),
                   det_salt("not-sealed-text-mode.mseal"), SEALED_AT)
    mangled = good.replace(b"\r\n", b"\n")
    assert mangled[:7] == b"\x89MSEAL\n"
    add("not-sealed-text-mode.mseal", mangled, "not-sealed", None, b"",
        "Not sealed. A valid sealed file after a text-mode transfer converted every CR LF to LF: "
        "the magic is now 89 4D 53 45 41 4C 0A ...")

    # ---------------- unsupported version ----------------
    def sealed_with_header(name, hdr_fields, plaintext, version=VERSION, h=None, key=KEY):
        hdr = header_bytes(hdr_fields, version=version, h=h)
        return hdr + cobblestone_encrypt(key, hdr, plaintext, det_salt(name))

    pt = det_bytes("v2", 100)
    add("unsupported-version-2.mseal",
        sealed_with_header("unsupported-version-2.mseal",
                           std_fields("example-model", "1.0.0", KEY_ID, "unknown", 100, SEALED_AT),
                           pt, version=2),
        "unsupported-version", None, b"",
        "Unsupported version. Format version field is 00 02; otherwise a well-formed v1 file "
        "(sealed with this header as context).")
    add("unsupported-version-0.mseal",
        sealed_with_header("unsupported-version-0.mseal",
                           std_fields("example-model", "1.0.0", KEY_ID, "unknown", 100, SEALED_AT),
                           pt, version=0),
        "unsupported-version", None, b"",
        "Unsupported version. Format version field is 00 00; otherwise well-formed.")
    add("unsupported-version-256.mseal",
        sealed_with_header("unsupported-version-256.mseal",
                           std_fields("example-model", "1.0.0", KEY_ID, "unknown", 100, SEALED_AT),
                           pt, version=0x0100),
        "unsupported-version", None, b"",
        "Unsupported version. Version bytes are 01 00 (256 big-endian); a decoder reading the "
        "version little-endian would wrongly see 1.")

    # ---------------- malformed header ----------------
    L = 100
    mpt = det_bytes("malformed", L)

    def F(model_id=b"example-model", model_version=b"1.0.0", key_id=KEY_ID.encode(),
          ctype=b"\x00", length=L.to_bytes(8, "big"), sealed_at=SEALED_AT.to_bytes(8, "big")):
        d = {TAG_MODEL_ID: model_id, TAG_MODEL_VERSION: model_version, TAG_KEY_ID: key_id,
             TAG_CONTENT_TYPE: ctype, TAG_PLAINTEXT_LENGTH: length, TAG_SEALED_AT: sealed_at}
        return {t: v for t, v in d.items() if v is not None}

    def fields_of(d, order=None, extra=()):
        items = list(d.items()) + list(extra)
        if order is None:
            items.sort(key=lambda kv: kv[0])
        else:
            items = [(t, dict(items)[t]) if not isinstance(t, tuple) else t for t in order]
        return [field(t, v) for t, v in items]

    def bad(name, hdr, comment, plaintext=mpt):
        data = hdr + cobblestone_encrypt(KEY, hdr, plaintext, det_salt(name))
        add(name, data, "malformed-header", None, b"", "Malformed header. " + comment)

    good_fields = fields_of(F())
    add("malformed-h-11.mseal",
        MAGIC + b"\x00\x01" + b"\x00\x0b" + b"".join(good_fields)
        + cobblestone_encrypt(KEY, b"", mpt, det_salt("malformed-h-11")),
        "malformed-header", None, b"",
        "Malformed header. H = 11 (below the minimum 12); the fields that follow are "
        "otherwise valid.")
    bad("malformed-h-12-no-fields.mseal", header_bytes([]),
        "H = 12: a header with no fields at all, so every required field is missing (rule 6).")
    # H = 4097 exactly filled
    base = fields_of(F())
    pad = 4097 - 12 - sum(len(f) for f in base) - 4
    bad("malformed-h-4097.mseal", header_bytes(base + [field(0xA000, det_bytes("h4097", pad))]),
        f"H = 4097 (above the maximum 4096); the fields, padded with a non-critical 0xA000 "
        f"field of {pad} bytes, exactly fill the 4097 bytes.")
    real = header_bytes(good_fields)
    data = header_bytes(good_fields, h=400) + cobblestone_encrypt(KEY, real, mpt,
                                                                  det_salt("malformed-h-past-eof"))
    assert len(data) < 400
    add("malformed-h-past-eof.mseal", data, "malformed-header", None, b"",
        f"Malformed header. H = 400 but the whole file is only {len(data)} bytes "
        f"(fewer than H bytes in the file).")
    bad("malformed-out-of-order.mseal",
        header_bytes(fields_of(F(), order=[2, 1, 3, 4, 5, 0x8001])),
        "Fields out of order: model version (0x0002) comes before model id (0x0001) (rule 1).")
    bad("malformed-duplicate-field.mseal",
        header_bytes(fields_of(F(), order=[1, 2, (2, b"1.0.1"), 3, 4, 5, 0x8001])),
        "Duplicate field: model version (0x0002) appears twice ('1.0.0' then '1.0.1') (rule 1).")
    bad("malformed-unknown-critical-0042.mseal",
        header_bytes(fields_of(F(), extra=[(0x0042, b"x")])),
        "Unknown critical tag 0x0042 (1-byte value) after the plaintext length; "
        "tags 0x0001-0x7FFF must be known (rule 3).")
    bad("malformed-unknown-critical-7fff.mseal",
        header_bytes(fields_of(F(), extra=[(0x7FFF, b"")])),
        "Unknown critical tag 0x7FFF (the last critical tag, empty value) before 0x8001 "
        "(rule 3); boundary of the critical range.")
    bad("malformed-tag-0000.mseal",
        header_bytes([field(0, b"")] + good_fields),
        "Reserved tag 0x0000 (empty value) as the first field (rule 2).")
    bad("malformed-missing-key-id.mseal",
        header_bytes(fields_of(F(key_id=None))),
        "Required field key id (0x0003) is missing (rule 6).")
    bad("malformed-missing-plaintext-length.mseal",
        header_bytes(fields_of(F(length=None))),
        "Required field plaintext length (0x0005) is missing (rule 6).")
    # field running past H: last field declares more bytes than remain; the payload follows
    fl = fields_of(F(sealed_at=None))
    fl.append(field(0x9000, b"abcd", declared_len=40))
    bad("malformed-field-past-h.mseal", header_bytes(fl),
        "The last field (non-critical 0x9000) declares a 40-byte value but only 4 bytes remain "
        "before H; the payload bytes follow, so a decoder that reads past H would not notice "
        "a short read (rule 5).")
    bad("malformed-partial-field-at-end.mseal",
        header_bytes(good_fields + [b"\x90\x00"]),
        "Two stray bytes (90 00, a tag with no length) after the last complete field, at the "
        "end of the header: a field header running past H (rule 5).")
    bad("malformed-content-type-7.mseal", header_bytes(fields_of(F(ctype=b"\x07"))),
        "Content type value 7 (only 0-3 are defined) (rule 6).")
    bad("malformed-content-type-4.mseal", header_bytes(fields_of(F(ctype=b"\x04"))),
        "Content type value 4, just past the defined 0-3 (rule 6).")
    bad("malformed-content-type-2-bytes.mseal", header_bytes(fields_of(F(ctype=b"\x00\x01"))),
        "Content type value is 2 bytes (00 01) instead of 1 (rule 6).")
    bad("malformed-length-2pow52.mseal",
        header_bytes(fields_of(F(length=(1 << 52).to_bytes(8, "big")))),
        "Plaintext length = 2^52 (00 10 00 00 00 00 00 00), one more than the maximum 2^52-1 "
        "(rule 6).")
    bad("malformed-length-all-ff.mseal",
        header_bytes(fields_of(F(length=b"\xff" * 8))),
        "Plaintext length = FF FF FF FF FF FF FF FF (2^64-1; -1 if misread as a signed 64-bit "
        "integer) (rule 6).")
    bad("malformed-length-7-bytes.mseal",
        header_bytes(fields_of(F(length=L.to_bytes(7, "big")))),
        "Plaintext length field value is 7 bytes instead of 8 (rule 6).")
    bad("malformed-sealed-at-4-bytes.mseal",
        header_bytes(fields_of(F(sealed_at=(SEALED_AT).to_bytes(4, "big")))),
        "Known optional field sealed-at (0x8001) has a 4-byte value instead of 8; it is known, "
        "so its size is checked even though it is non-critical (rule 6).")
    bad("malformed-sealed-at-max-plus-1.mseal",
        header_bytes(fields_of(F(sealed_at=(MAX_SEALED_AT + 1).to_bytes(8, "big")))),
        "Sealed-at = 253402300800 (00 00 00 3A FF F4 41 80, 10000-01-01T00:00:00Z), one more "
        "than the largest value 253402300799 (rule 6).")
    bad("malformed-sealed-at-all-ff.mseal",
        header_bytes(fields_of(F(sealed_at=b"\xff" * 8))),
        "Sealed-at = FF FF FF FF FF FF FF FF (2^64-1; -1, one second before 1970, if misread as a "
        "signed 64-bit integer) (rule 6).")
    bad("malformed-sealed-at-2pow63.mseal",
        header_bytes(fields_of(F(sealed_at=(1 << 63).to_bytes(8, "big")))),
        "Sealed-at = 2^63 (80 00 00 00 00 00 00 00; the most negative value if misread as a "
        "signed 64-bit integer) (rule 6).")
    bad("malformed-id-slash.mseal", header_bytes(fields_of(F(model_id=b"a/b"))),
        "Model id 'a/b' contains '/', not an identifier character (rule 6).")
    bad("malformed-id-leading-dot.mseal", header_bytes(fields_of(F(model_id=b".hidden"))),
        "Model id '.hidden' starts with '.', which is only allowed after the first byte "
        "(rule 6).")
    bad("malformed-id-leading-dash.mseal", header_bytes(fields_of(F(key_id=b"-test-key-1"))),
        "Key id '-test-key-1' starts with '-' (rule 6).")
    bad("malformed-id-non-ascii.mseal", header_bytes(fields_of(F(model_id="modèle".encode()))),
        "Model id 'modèle' in UTF-8 (6D 6F 64 C3 A8 6C 65): non-ASCII bytes (rule 6).")
    bad("malformed-id-space.mseal", header_bytes(fields_of(F(model_version=b"1.0 beta"))),
        "Model version '1.0 beta' contains a space (rule 6).")
    bad("malformed-empty-model-id.mseal", header_bytes(fields_of(F(model_id=b""))),
        "Model id is present but empty (0 bytes; identifiers are 1-128 bytes) (rule 6).")
    bad("malformed-model-version-65.mseal",
        header_bytes(fields_of(F(model_version=b"v" + b"1" * 64))),
        "Model version is 65 bytes (maximum 64) (rule 6).")
    bad("malformed-model-id-129.mseal",
        header_bytes(fields_of(F(model_id=b"m" * 129))),
        "Model id is 129 bytes (maximum 128) (rule 6).")
    bad("malformed-key-id-129.mseal",
        header_bytes(fields_of(F(key_id=b"k" * 129))),
        "Key id is 129 bytes (maximum 128) (rule 6).")
    bad("malformed-noncritical-out-of-order.mseal",
        header_bytes(fields_of(F(), order=[1, 2, 3, 4, 5, (0x9000, b"ext"), 0x8001])),
        "Unknown non-critical field 0x9000 placed before the sealed-at field 0x8001: order is "
        "checked for unknown tags too (rule 1).")

    # ---------------- authentication ----------------
    def sealed(name, plaintext, model_id="example-model", model_version="1.0.0", extra=(),
               key=KEY, sealed_at=SEALED_AT):
        hdr = header_bytes(std_fields(model_id, model_version, KEY_ID,
                                      detect_content_type(plaintext), len(plaintext),
                                      sealed_at, list(extra)))
        s, c, chunks = encrypt_chunks(key, hdr, plaintext, det_salt(name))
        info = {"modelId": model_id, "modelVersion": model_version, "keyId": KEY_ID,
                "contentType": detect_content_type(plaintext), "plaintextLength": len(plaintext),
                "headerLength": len(hdr), "sealedAt": sealed_at}
        return hdr, s, c, chunks, info

    def auth(name, data, info, comment):
        add(name, data, "authentication", info, b"", "Authentication failure. " + comment)

    def flip(b: bytes, index: int, bit: int = 0) -> bytes:
        arr = bytearray(b)
        arr[index] ^= 1 << bit
        return bytes(arr)

    n = "auth-wrong-key.mseal"
    h, s, c, ch, info = sealed(n, det_bytes(n, 300), key=WRONG_KEY)
    auth(n, h + s + c + b"".join(ch), info,
         "Sealed under a different 32-byte key that carries the same key id 'test-key-1': the "
         "commitment does not match for the given key.")

    n = "auth-model-version-edited.mseal"
    h, s, c, ch, info = sealed(n, det_bytes(n, 300), model_version="1.0.0")
    h2 = h.replace(b"1.0.0", b"1.0.1")
    assert len(h2) == len(h) and h2 != h
    info = dict(info, modelVersion="1.0.1")
    auth(n, h2 + s + c + b"".join(ch), info,
         "Sealed with model version '1.0.0', then the header was edited to '1.0.1' (same "
         "length, still parses): the context changed, so the commitment fails.")

    n = "auth-noncritical-field-edited.mseal"
    h, s, c, ch, info = sealed(n, det_bytes(n, 300), extra=[(0x9000, b"extension!")])
    h2 = h.replace(b"extension!", b"extension?")
    assert len(h2) == len(h) and h2 != h
    auth(n, h2 + s + c + b"".join(ch), info,
         "The value of the unknown non-critical field 0x9000 was edited after sealing "
         "('extension!' -> 'extension?'): skipped fields are still part of the context, so "
         "the commitment fails.")

    n = "auth-sealed-at-edited.mseal"
    h, s, c, ch, info = sealed(n, det_bytes(n, 300))
    i = h.index(field(TAG_SEALED_AT, SEALED_AT.to_bytes(8, "big")))
    h2 = flip(h, i + 4 + 7, 0)
    info = dict(info, sealedAt=SEALED_AT ^ 1)
    auth(n, h2 + s + c + b"".join(ch), info,
         "The informative sealed-at value was changed by 1 second after sealing: the commitment "
         "fails.")

    n = "auth-truncated-1-byte.mseal"
    h, s, c, ch, info = sealed(n, det_bytes(n, 1000))
    auth(n, (h + s + c + b"".join(ch))[:-1], info,
         "Payload truncated by 1 byte (the last byte of the final chunk's tag): short read of "
         "the final chunk.")

    n = "auth-truncated-chunk-boundary.mseal"
    h, s, c, ch, info = sealed(n, det_bytes(n, 16384))
    assert len(ch) == 2 and len(ch[1]) == 16
    auth(n, h + s + c + ch[0], info,
         "16384-byte model with its empty final chunk (16-byte tag) dropped: the file ends "
         "cleanly after the full chunk 0, but N = 2 chunks are required.")

    n = "auth-header-only.mseal"
    h, s, c, ch, info = sealed(n, det_bytes(n, 100))
    auth(n, h, info,
         "Only the header: salt, commitment and chunks are all missing (file length = H).")

    n = "auth-truncated-in-commitment.mseal"
    h, s, c, ch, info = sealed(n, det_bytes(n, 100))
    auth(n, h + s + c[:16], info,
         "Header, salt and only 16 of the 32 commitment bytes: fewer than 56 payload bytes.")

    n = "auth-trailing-byte.mseal"
    h, s, c, ch, info = sealed(n, det_bytes(n, 1000))
    auth(n, h + s + c + b"".join(ch) + b"\x00", info,
         "One trailing byte (00) appended after the final chunk; every chunk verifies, but the "
         "file must end there.")

    n = "auth-trailing-valid-chunk.mseal"
    h, s, c, ch, info = sealed(n, det_bytes(n, 1000))
    extra_chunk = encrypt_chunk_at(KEY, h, s, len(ch), det_bytes(n + "/extra", 100))
    auth(n, h + s + c + b"".join(ch) + extra_chunk, info,
         "A validly encrypted extra chunk (index 1, 100 bytes + tag) appended after the real "
         "final chunk 0 of a 1000-byte model: trailing data.")

    n = "auth-flipped-bit-chunk0.mseal"
    h, s, c, ch, info = sealed(n, det_bytes(n, 20000))
    auth(n, h + s + c + flip(ch[0], 1000, 3) + ch[1], info,
         "20000-byte model (2 chunks): one bit flipped in the ciphertext of chunk 0 (byte 1000 "
         "of the chunk); the final chunk and the file length are still correct.")

    n = "auth-flipped-bit-final-tag.mseal"
    h, s, c, ch, info = sealed(n, det_bytes(n, 500))
    auth(n, h + s + c + flip(ch[0], len(ch[0]) - 1, 7), info,
         "500-byte model: the top bit of the last byte of the final (only) chunk's tag flipped.")

    n = "auth-flipped-bit-commitment.mseal"
    h, s, c, ch, info = sealed(n, det_bytes(n, 500))
    auth(n, h + s + flip(c, 0, 0) + b"".join(ch), info,
         "One bit flipped in the first byte of the stored commitment.")

    n = "auth-flipped-bit-salt.mseal"
    h, s, c, ch, info = sealed(n, det_bytes(n, 500))
    auth(n, h + flip(s, 23, 1) + c + b"".join(ch), info,
         "One bit flipped in the last byte of the salt: the derived commitment no longer "
         "matches.")

    n = "auth-chunks-swapped.mseal"
    h, s, c, ch, info = sealed(n, det_bytes(n, 32769))
    assert len(ch) == 3
    auth(n, h + s + c + ch[1] + ch[0] + ch[2], info,
         "32769-byte model (3 chunks: 16400, 16400, 17 bytes) with chunks 0 and 1 swapped; "
         "each chunk is authentic but at the wrong index.")

    n = "auth-chunk0-duplicated.mseal"
    h, s, c, ch, info = sealed(n, det_bytes(n, 32769))
    auth(n, h + s + c + ch[0] + ch[0] + ch[2], info,
         "32769-byte model (3 chunks) with chunk 0 copied over chunk 1: chunk 1 fails "
         "(the final chunk is valid).")

    n = "auth-length-field-larger.mseal"
    real_pt = det_bytes(n, 3000)
    hdr_fields = std_fields("example-model", "1.0.0", KEY_ID, "unknown", 20000, SEALED_AT)
    h = header_bytes(hdr_fields)
    info = {"modelId": "example-model", "modelVersion": "1.0.0", "keyId": KEY_ID,
            "contentType": "unknown", "plaintextLength": 20000, "headerLength": len(h),
            "sealedAt": SEALED_AT}
    auth(n, h + cobblestone_encrypt(KEY, h, real_pt, det_salt(n)), info,
         "Header says L = 20000 (N = 2) but the payload is a consistent Cobblestone encryption "
         "(same header as context, so the commitment passes) of a 3000-byte model: the file "
         f"is {len(h) + 56 + 3016} bytes instead of H+56+L+16N = {len(h) + 56 + 20000 + 32}; "
         "chunk 0 is a short read.")

    n = "auth-length-field-smaller.mseal"
    real_pt = det_bytes(n, 3000)
    hdr_fields = std_fields("example-model", "1.0.0", KEY_ID, "unknown", 1000, SEALED_AT)
    h = header_bytes(hdr_fields)
    payload = cobblestone_encrypt(KEY, h, real_pt, det_salt(n))[:56 + 1016]
    info = {"modelId": "example-model", "modelVersion": "1.0.0", "keyId": KEY_ID,
            "contentType": "unknown", "plaintextLength": 1000, "headerLength": len(h),
            "sealedAt": SEALED_AT}
    auth(n, h + payload, info,
         "Header says L = 1000; the payload encrypts a 3000-byte model under this header and "
         "was cut to exactly H+56+1016 bytes, so the file length matches L, but the 1016 bytes "
         "read as the final chunk are the first bytes of a 3016-byte chunk: tag mismatch.")

    n = "auth-length-max.mseal"
    hdr_fields = std_fields("example-model", "1.0.0", KEY_ID, "unknown", MAX_L, SEALED_AT)
    h = header_bytes(hdr_fields)
    real_pt = det_bytes(n, 100)
    info = {"modelId": "example-model", "modelVersion": "1.0.0", "keyId": KEY_ID,
            "contentType": "unknown", "plaintextLength": MAX_L, "headerLength": len(h),
            "sealedAt": SEALED_AT}
    auth(n, h + cobblestone_encrypt(KEY, h, real_pt, det_salt(n)), info,
         "Header says L = 2^52-1 (the maximum; valid header, N = 2^38 chunks) but the payload "
         "is a 100-byte model sealed under this header: chunk 0 is a short read. A decoder must "
         "not try to allocate L bytes up front.")

    # Sanity: the attacked files were built from genuine ones; undoing the attack opens them.
    by_name = {name: data for name, data, _ in vecs}
    open_sealed(by_name["auth-wrong-key.mseal"], WRONG_KEY, KEY_ID)
    open_sealed(by_name["auth-model-version-edited.mseal"].replace(b"1.0.1", b"1.0.0"), KEY, KEY_ID)
    open_sealed(by_name["auth-noncritical-field-edited.mseal"].replace(b"extension?", b"extension!"),
                KEY, KEY_ID)
    open_sealed(by_name["not-sealed-text-mode.mseal"].replace(b"MSEAL\n", b"MSEAL\r\n", 1), KEY, KEY_ID)
    assert looks_like_onnx(by_name["not-sealed-plain-onnx.mseal"])

    names = [v[0] for v in vecs]
    assert len(names) == len(set(names)), "duplicate file names"
    return vecs


def generate() -> None:
    vecs = build_vectors()
    keep = {name for name, _, _ in vecs}
    for p in HERE.glob("*.mseal"):
        if p.name not in keep:
            p.unlink()
    for name, data, _ in vecs:
        (HERE / name).write_bytes(data)
    manifest = {
        "description": (
            "ModelSeal sealed-model format v1 example vectors, produced by generate.py, an "
            "independent Python implementation written from docs/format.md alone. Each entry "
            "names a file, the key (hex) and key id to open it with, the expected outcome "
            "(ok, not-sealed, unsupported-version, malformed-header, authentication), the header "
            "field values when the header parses (else null), the SHA-256 of the decrypted model "
            "for ok (else null), and what the file tests."
        ),
        "vectors": [entry for _, _, entry in vecs],
    }
    (HERE / "vectors.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    total = sum(len(d) for _, d, _ in vecs)
    print(f"wrote {len(vecs)} vectors ({total} bytes of .mseal files) and vectors.json to {HERE}")


def check(verbose: bool = False) -> bool:
    manifest = json.loads((HERE / "vectors.json").read_text())
    expected_keys = ["file", "key", "keyId", "expect", "header", "plaintextSha256", "comment"]
    failures = 0
    for v in manifest["vectors"]:
        problems = []
        if list(v.keys()) != expected_keys:
            problems.append(f"manifest keys {list(v.keys())}")
        data = (HERE / v["file"]).read_bytes()
        key = bytes.fromhex(v["key"])
        parsed = None
        try:
            parsed, _ = parse_header(data)
        except SealError:
            pass
        try:
            hdr, pt = open_sealed(data, key, v["keyId"])
            outcome, reason = "ok", ""
        except SealError as e:
            hdr, pt, outcome, reason = None, None, e.cls, e.reason
        if outcome != v["expect"]:
            problems.append(f"got {outcome} ({reason}), expected {v['expect']}")
        if v["header"] != parsed:
            problems.append(f"header {parsed} != manifest {v['header']}")
        if outcome == "ok":
            if hashlib.sha256(pt).hexdigest() != v["plaintextSha256"]:
                problems.append("plaintext SHA-256 differs")
            if detect_content_type(pt) != hdr["contentType"]:
                problems.append("content type does not match detection")
        elif v["plaintextSha256"] is not None:
            problems.append("plaintextSha256 should be null")
        if problems:
            failures += 1
            print(f"FAIL {v['file']}: {'; '.join(problems)}")
        elif verbose:
            print(f"ok   {v['file']:45s} {outcome:20s} {reason}")
    n = len(manifest["vectors"])
    print(f"check: {n - failures}/{n} vectors gave their declared outcome")
    return failures == 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="decode every vector and compare outcomes")
    ap.add_argument("--selfcheck", action="store_true", help="validate Cobblestone-256 against Wycheproof")
    ap.add_argument("--wycheproof", type=Path, help="path to c2sp_chunked_encryption_aes_256_gcm_test.json")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if args.selfcheck or args.check:
        ok = True
        if args.selfcheck:
            ok &= selfcheck(args.wycheproof)
        if args.check:
            ok &= check(args.verbose)
        return 0 if ok else 1
    generate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
