#!/usr/bin/env python3
"""Slow and partial connections: what they cost and whether they are closed.

Usage: bench/slow_connections.py BINARY PORT

Starts BINARY (local mode, a fresh data folder) on 127.0.0.1:PORT, reads its RSS, opens
100 connections that send half a request line or a token request's head and a few body
bytes, reads the RSS again, then waits (20 s at most) for the server to close them.
Prints one JSON line: RSS before and with the connections (KiB), per connection, and how
many were closed in how many seconds. Loopback only.
"""
import socket, subprocess, sys, time, os, json, tempfile
binary=sys.argv[1]; port=int(sys.argv[2])
d=tempfile.mkdtemp()
env=dict(PATH=os.environ["PATH"],APP_ENV="local",APP__SERVER__PORT=str(port),APP__STORE__PATH=d+"/shows.db",APP__LOG__FORMAT="json",APP__SERVER__HEADERREADTIMEOUTMS="5000")
p=subprocess.Popen([binary,"serve"],env=env,stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
def rss(): 
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])
for _ in range(100):
    try: socket.create_connection(("127.0.0.1",port)).close(); break
    except OSError: time.sleep(0.1)
time.sleep(0.5); r0=rss()
conns=[]
for i in range(100):
    s=socket.create_connection(("127.0.0.1",port)); s.sendall(b"GET /v1/sho" if i%2==0 else b"POST /oauth/token HTTP/1.1\r\nContent-Length: 100\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\ngrant"); conns.append(s)
time.sleep(1.0); r1=rss()
t0=time.time(); closed=0
for s in conns:
    s.settimeout(max(0.1, 20-(time.time()-t0)))
    try:
        if s.recv(100)==b"" : closed+=1
        else: closed+=1
    except socket.timeout: pass
    except OSError: closed+=1
print(json.dumps(dict(binary=binary,rss_before_kib=r0,rss_with_100_kib=r1,per_conn_kib=(r1-r0)/100,closed=closed,closed_within_s=round(time.time()-t0,2))))
p.terminate(); p.wait()
