#!/usr/bin/env python3
"""A second vhost-user device's backend that imports buffers by UUID (vhost-user SHARED_OBJECT), for virgl.sh's
`share` case.

    shared_importer.py --socket PATH --control FIFO --log EVENTS.jsonl

QEMU connects to PATH as the frontend of `-device vhost-user-test-device-pci,chardev=...,virtio-id=30,num_vqs=1`
(a video encoder: no guest driver binds it, so QEMU sets it up and never starts it; with a virtio-id a driver
takes, the importer also answers what QEMU asks to start and stop it, and ignores the queue). The importer
offers REPLY_ACK, BACKEND_REQ and SHARED_OBJECT and takes the backend channel (SET_BACKEND_REQ_FD).

Lines written to FIFO drive it:
    lookup UUID SIZE    SHARED_OBJECT_LOOKUP (backend request 8) of UUID (8-4-4-4-12 hex) on the backend channel.
                        QEMU looks the UUID up in its table; for a UUID another vhost-user device announced
                        (SHARED_OBJECT_ADD) it asks that device's backend with GET_SHARED_OBJECT and passes
                        the fd on. The importer maps the fd and compares its first SIZE bytes with the pattern
                        guest/3d/share.c writes (byte i = ((i * 7) ^ (i >> 7) ^ 0x5a) & 0xff).
    quit                ends the importer.
One JSON line per lookup goes to EVENTS.jsonl: {"event": "lookup", "uuid", "reply" (QEMU's u64), "fd" (whether
one came with the reply), "fd_elsewhere" (an fd that came on the main socket instead: a frontend bug),
"size" (the file's size), "match" (the SIZE bytes are the pattern), "first_mismatch"}. QEMU 11.1.3 answers
a look-up with 0 but hands the fd to the importer's main chardev instead of the reply (and drops it there): a
message on the main socket that brings an fd it should not have is checked the same way, {"event":
"late-fd", ...}, should a QEMU ever send it there. Every frontend request is logged ({"event": "request"}). Python 3.9+ stdlib only.
"""
import argparse
import array
import json
import mmap
import os
import select
import socket
import struct
import sys
import time
import uuid as uuidlib

HDR = struct.Struct("<III")
VERSION = 0x1
REPLY = 0x4
NEED_REPLY = 0x8
F_PROTOCOL_FEATURES = 1 << 30
F_VERSION_1 = 1 << 32
PROTO_REPLY_ACK = 1 << 3
PROTO_BACKEND_REQ = 1 << 5
PROTO_SHARED_OBJECT = 1 << 18
OFFERED_PROTOCOL = PROTO_REPLY_ACK | PROTO_BACKEND_REQ | PROTO_SHARED_OBJECT

GET_FEATURES, SET_FEATURES, SET_OWNER, RESET_OWNER = 1, 2, 3, 4
GET_VRING_BASE = 11
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, GET_QUEUE_NUM = 15, 16, 17
SET_BACKEND_REQ_FD = 21
GET_CONFIG = 24
GET_MAX_MEM_SLOTS = 36
GET_STATUS = 40
BACKEND_SHARED_OBJECT_LOOKUP = 8

log_file = None


def event(**fields):
    log_file.write(json.dumps({"t": round(time.monotonic(), 3), **fields}) + "\n")
    log_file.flush()


def pattern(i):
    return ((i * 7) ^ (i >> 7) ^ 0x5A) & 0xFF


def recv_message(sock):
    """One message: (request, flags, payload, fds); None when the peer closed."""
    fds = array.array("i")
    data, anc, _, _ = sock.recvmsg(HDR.size, socket.CMSG_SPACE(8 * fds.itemsize))
    if not data:
        return None
    while len(data) < HDR.size:
        more = sock.recv(HDR.size - len(data))
        if not more:
            return None
        data += more
    for level, kind, cdata in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(cdata[: len(cdata) - (len(cdata) % fds.itemsize)])
    request, flags, size = HDR.unpack(data)
    payload = b""
    while len(payload) < size:
        more = sock.recv(size - len(payload))
        if not more:
            return None
        payload += more
    return request, flags, payload, list(fds)


def send_reply(sock, request, payload):
    sock.sendall(HDR.pack(request, VERSION | REPLY, len(payload)) + payload)


class Importer:
    def __init__(self):
        self.frontend = None
        self.channel = None
        self.stray_fds = []  # fds that came with main-socket messages that carry none
        self.awaiting = None  # (uuid, size) of a look-up answered 0 without its fd

    def serve_frontend(self):
        msg = recv_message(self.frontend)
        if msg is None:
            event(event="frontend-closed")
            self.frontend.close()
            self.frontend = None
            return
        request, flags, payload, fds = msg
        event(event="request", request=request, size=len(payload), fds=len(fds))
        reply = None
        if request == GET_FEATURES:
            reply = struct.pack("<Q", F_VERSION_1 | F_PROTOCOL_FEATURES)
        elif request == GET_PROTOCOL_FEATURES:
            reply = struct.pack("<Q", OFFERED_PROTOCOL)
        elif request == GET_QUEUE_NUM:
            reply = struct.pack("<Q", 1)
        elif request == GET_MAX_MEM_SLOTS:
            reply = struct.pack("<Q", 8)
        elif request == GET_STATUS:
            reply = struct.pack("<Q", 0)
        elif request == GET_CONFIG and len(payload) >= 12:
            offset, size, cflags = struct.unpack_from("<III", payload)
            reply = struct.pack("<III", offset, size, cflags) + bytes(size)
        elif request == GET_VRING_BASE and len(payload) >= 8:
            index, _ = struct.unpack_from("<II", payload)
            reply = struct.pack("<II", index, 0)
        elif request == SET_BACKEND_REQ_FD and fds:
            if self.channel is not None:
                self.channel.close()
            self.channel = socket.socket(fileno=fds.pop(0))
            event(event="backend-channel")
        if request != SET_BACKEND_REQ_FD or fds:
            # Requests that carry fds we do not use (memory table, vring kick/call) close them; an fd on a
            # request that carries none is the frontend's (a look-up's fd sent on the wrong socket).
            if fds and request not in (5, 12, 13, 14, 32, 33, 37):
                event(event="stray-fd", request=request, count=len(fds))
                if self.awaiting is not None:
                    uuid_text, size = self.awaiting
                    self.awaiting = None
                    result = {"event": "late-fd", "uuid": uuid_text, "request": request}
                    self.check(fds.pop(0), size, result)
                    event(**result)
                self.stray_fds.extend(fds)
            else:
                for fd in fds:
                    os.close(fd)
        if request == SET_PROTOCOL_FEATURES:
            event(event="protocol-features", acked=hex(struct.unpack_from("<Q", payload)[0]))
        if reply is not None:
            send_reply(self.frontend, request, reply)
        elif flags & NEED_REPLY:
            send_reply(self.frontend, request, struct.pack("<Q", 0))

    def lookup(self, text, size):
        result = {"event": "lookup", "uuid": text, "reply": None, "fd": False, "fd_elsewhere": False,
                  "size": None, "match": False, "first_mismatch": None}
        try:
            raw = uuidlib.UUID(text).bytes
        except ValueError:
            result["error"] = "not a UUID"
            event(**result)
            return
        if self.channel is None:
            result["error"] = "no backend channel (SHARED_OBJECT or BACKEND_REQ not negotiated?)"
            event(**result)
            return
        self.channel.sendall(HDR.pack(BACKEND_SHARED_OBJECT_LOOKUP, VERSION | NEED_REPLY, len(raw)) + raw)
        self.channel.settimeout(10)
        try:
            msg = recv_message(self.channel)
        except OSError as e:
            result["error"] = f"no reply: {e}"
            event(**result)
            return
        if msg is None:
            result["error"] = "the frontend closed the backend channel"
            event(**result)
            return
        request, flags, payload, fds = msg
        if request != BACKEND_SHARED_OBJECT_LOOKUP or not flags & REPLY or len(payload) != 8:
            result["error"] = f"malformed reply (request {request}, flags {flags:#x}, {len(payload)} bytes)"
            event(**result)
            return
        result["reply"] = struct.unpack("<q", payload)[0]
        fd = fds.pop(0) if fds else None
        for extra in fds:
            os.close(extra)
        if fd is None and self.stray_fds:
            fd = self.stray_fds.pop(0)
            result["fd_elsewhere"] = True
        if fd is None:
            if result["reply"] == 0:
                self.awaiting = (text, size)
            event(**result)
            return
        result["fd"] = True
        self.check(fd, size, result)
        event(**result)

    @staticmethod
    def check(fd, size, result):
        """Maps fd and compares its first `size` bytes with the pattern; records what it found in `result`."""
        result.update({"size": None, "match": False, "first_mismatch": None})
        try:
            result["size"] = os.fstat(fd).st_size
            if size > 0 and result["size"] >= size:
                with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ) as m:
                    data = m[:size]
                mismatch = next((i for i in range(size) if data[i] != pattern(i)), None)
                result["match"] = mismatch is None
                result["first_mismatch"] = mismatch
        except (OSError, ValueError) as e:
            result["error"] = f"cannot read the buffer: {e}"
        finally:
            os.close(fd)


def main():
    global log_file
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--socket", required=True)
    ap.add_argument("--control", required=True, help="a FIFO the importer reads commands from")
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    log_file = open(args.log, "a", encoding="utf-8")
    if not os.path.exists(args.control):
        os.mkfifo(args.control)
    control = os.open(args.control, os.O_RDWR | os.O_NONBLOCK)  # RDWR: never EOF when a writer goes
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    listener.bind(args.socket)
    listener.listen(1)
    event(event="listening", socket=args.socket)
    imp = Importer()
    pending = b""
    while True:
        watch = [listener, control] + ([imp.frontend] if imp.frontend else [])
        readable, _, _ = select.select(watch, [], [], 1.0)
        if listener in readable:
            conn, _ = listener.accept()
            if imp.frontend is not None:
                conn.close()
            else:
                imp.frontend = conn
                event(event="frontend-connected")
        if imp.frontend is not None and imp.frontend in readable:
            try:
                imp.serve_frontend()
            except OSError as e:
                event(event="frontend-error", error=str(e))
                imp.frontend = None
        if control in readable:
            pending += os.read(control, 4096)
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                words = line.decode(errors="replace").split()
                if words[:1] == ["quit"]:
                    event(event="quit")
                    return 0
                if words[:1] == ["lookup"] and len(words) == 3:
                    imp.lookup(words[1], int(words[2]))
                elif words:
                    event(event="bad-command", line=" ".join(words))


if __name__ == "__main__":
    sys.exit(main())
