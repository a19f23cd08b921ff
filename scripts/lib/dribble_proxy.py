#!/usr/bin/env python3
"""A TCP proxy that passes the server's bytes on one at a time, slowly, so a
TLS client spends its time inside the handshake and record processing of
its TLS library (kube-leader: OpenSSL on the election thread).

    dribble_proxy.py TARGET_HOST TARGET_PORT [DELAY_MS]

Listens on 127.0.0.1 (a free port), prints {"port": N} on stdout, then
serves until killed. Client to server: passed on as it comes.
"""
import json, socket, sys, threading, time

def pump(src, dst, delay):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if delay:
                for i in range(len(data)):
                    dst.sendall(data[i:i + 1])
                    time.sleep(delay)
            else:
                dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

def main():
    host, port = sys.argv[1], int(sys.argv[2])
    delay = (float(sys.argv[3]) if len(sys.argv) > 3 else 2.0) / 1000
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print(json.dumps({"port": listener.getsockname()[1]}), flush=True)
    while True:
        client, _ = listener.accept()
        try:
            server = socket.create_connection((host, port))
        except OSError:
            client.close()
            continue
        for args in ((client, server, 0), (server, client, delay)):
            threading.Thread(target=pump, args=args, daemon=True).start()

if __name__ == "__main__":
    main()
