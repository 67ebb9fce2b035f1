#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target (tests/fuzz/corpus/TARGET/)
from the inputs of the existing unit and integration tests: the client
frames of tests/protocol/codec_test.cpp, the provider streams of
tests/ai/openai_stream_test.cpp and anthropic_stream_test.cpp, the tokens
and claims of tests/protocol/jwt_test.cpp, the frames of
tests/gateway/ws_codec_test.cpp and the requests of
tests/integration/http_edges_test.cpp. Each seed starts with the bytes the
target reads as parameters (see the target's comment). File names are the
SHA-1 of the content, as libFuzzer names its own finds. Run it again after
changing those tests; crash inputs (crash-*) kept in the corpus stay."""
import base64, hashlib, hmac, json, os, re, struct, sys

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
corpus = os.path.join(root, "tests", "fuzz", "corpus")


def read(path):
    return open(os.path.join(root, path), encoding="utf-8").read()


def cxx_unescape(s):
    return s.encode("utf-8").decode("unicode_escape").encode("latin-1")


def write(target, seeds):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        if not name.startswith("crash-"):
            os.remove(os.path.join(d, name))
    for s in dict.fromkeys(seeds):
        open(os.path.join(d, hashlib.sha1(s).hexdigest()), "wb").write(s)
    print(f"{target}: {len(set(seeds))} seeds")


# protocol_codec_fuzz: one text frame.
codec = read("tests/protocol/codec_test.cpp")
frames = [m.encode() for m in re.findall(r'R"\((\{"type.*?)\)"', codec)]
write("protocol_codec_fuzz", frames)

# openai_sse_fuzz / anthropic_sse_fuzz: piece size, reply cap, then the body.
prefix = b"\x06\x10"
oa = read("tests/ai/openai_stream_test.cpp")
events = [m.encode() for m in re.findall(r'R"\((data: .*?)\)"', oa)]
seeds = [prefix + e + b"\n\n" for e in events]
seeds.append(prefix + b"".join(e + b"\n\n" for e in events) + b"data: [DONE]\n\n")
seeds.append(prefix + b"\xef\xbb\xbf: keep-alive\r\n" + b"".join(e + b"\r\n\r\n" for e in events[:3]))
write("openai_sse_fuzz", seeds)

an = read("tests/ai/anthropic_stream_test.cpp")
pairs = re.findall(r'"event: (\w+)\\n"\s*R"\((data: .*?)\)"', an)
events = [b"event: " + e.encode() + b"\n" + d.encode() for e, d in pairs]
seeds = [prefix + e + b"\n\n" for e in events]
seeds.append(prefix + b"".join(e + b"\n\n" for e in events))
write("anthropic_sse_fuzz", seeds)

# jwt_fuzz: mode byte, then a token (0), header \n payload (1), ttl + user (2, 3).
jt = read("tests/protocol/jwt_test.cpp")
tokens = []
for m in re.finditer(r'const char\* \w+ = ((?:"[^"]*"\s*)+);', jt):
    tokens.append("".join(re.findall(r'"([^"]*)"', m.group(1))).encode())
claims = [
    b'{"alg":"HS256","typ":"JWT"}\n{"sub":"alice","exp":1795471200}',
    b'{"alg":"HS256"}\n{"sub":"alice","exp":1795467600.75,"nbf":1795467000}',
    b'{"alg":"HS256"}\n{"sub":42,"exp":1795467660}',
    b'{"alg":"none"}\n{"sub":"alice","exp":1795467660}',
    b'{"alg":"HS256"}\n{"sub":"\\u00e9t\\u00e9","exp":"soon"}',
]


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def hs256(header, payload, key=b"fuzz-secret"):
    si = b64(header) + b"." + b64(payload)
    return si + b"." + b64(hmac.new(key, si, hashlib.sha256).digest())


tokens += [hs256(*c.split(b"\n", 1)) for c in claims]
seeds = [b"\x00" + t for t in tokens] + [b"\x01" + c for c in claims]
seeds += [b"\x02\x0e\x10alice", b"\x02\xff\xffbob", b"\x03\x00\x00\x00\x00\x00\x00\x0e\x10alice",
          b"\x02\x0e\x10" + "été".encode()]
write("jwt_fuzz", seeds)

# ws_frames_fuzz: flags, message limit (2 bytes), piece size, then the stream
# of client frames (masked, as ws_codec_test.cpp's client_frame makes them).
def frame(op, payload, fin=True, masked=True, extra=0):
    mask = bytes([0x37, 0xFA, 0x21, 0x3D])
    n = len(payload)
    b = bytes([(0x80 if fin else 0) | extra | op])
    m = 0x80 if masked else 0
    if n < 126:
        b += bytes([m | n])
    elif n <= 0xFFFF:
        b += bytes([m | 126]) + struct.pack(">H", n)
    else:
        b += bytes([m | 127]) + struct.pack(">Q", n)
    if masked:
        b += mask
    return b + bytes(c ^ (mask[i % 4] if masked else 0) for i, c in enumerate(payload))


send = b'{"type":"send","clientMsgId":"c1","content":"Hello"}'
streams = [
    frame(1, send),
    frame(1, b"Hel", fin=False) + frame(9, b"p") + frame(0, b"lo"),
    frame(9, b"ping") + frame(10, b"") + frame(8, struct.pack(">H", 1000) + b"bye"),
    frame(2, b"\x00\x01"),
    frame(1, b"\xc3\xa9t\xc3\xa9") + frame(1, b"\xc3"),
    frame(1, b"x" * 300),
    frame(1, b"unmasked", masked=False),
    frame(1, b"rsv", extra=0x40),
    frame(8, b""),
]
seeds = [bytes([flags]) + b"\x10\x00" + bytes([piece]) + s
         for s in streams for flags, piece in ((0, 7), (3, 1))]
write("ws_frames_fuzz", seeds)

# http_request_fuzz: piece size, then the bytes of one connection.
upgrade = (b"GET /api/v1/chat/ws?token=abc.def.ghi HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
           b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
           b"Origin: http://127.0.0.1:8080\r\n\r\n")
requests = [
    b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    b"POST /api/v1/conversations HTTP/1.1\r\nHost: t\r\nContent-Length: 15\r\n"
    b"Authorization: Bearer abc.def.ghi\r\n\r\n{\"title\":\"x\"}\r\n",
    b"GET /api/v1/conversations/c1/messages?before=10&limit=50 HTTP/1.1\r\nHost: t\r\n"
    b"Authorization: bearer   tok\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    upgrade,
    upgrade.replace(b"Version: 13", b"Version: 8").replace(b"http://127", b"https://evil"),
]
write("http_request_fuzz", [b"\x40" + r for r in requests] + [b"\x02" + upgrade])
