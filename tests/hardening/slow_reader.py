"""A client that stops reading an SSE stream: a tiny receive buffer (so the server's writes
block within a few KB), reads until the first event, then reads nothing for PAUSE seconds, then
reads to the end. Prints {"bytes": N, "done": bool, "first_s": t} as JSON.
usage: slow_reader.py PORT PATH BODY_JSON PAUSE_S"""
import json
import socket
import sys
import time

port, path, body, pause = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode(), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", port))
s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
          b"Connection: close\r\n\r\n%s" % (path.encode(), len(body), body))
buf = b""
t0 = time.time()
while b"data: {" not in buf:
    d = s.recv(4096)
    if not d:
        break
    buf += d
first = time.time() - t0
print("paused", flush=True)
time.sleep(pause)
s.settimeout(30)
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        buf += d
except (socket.timeout, ConnectionResetError):
    pass
print(json.dumps({"bytes": len(buf), "done": b"data: [DONE]" in buf, "first_s": first}), flush=True)
