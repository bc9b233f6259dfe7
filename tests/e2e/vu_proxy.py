#!/usr/bin/env python3
"""vhost-user proxy between QEMU and a GPU backend that records what the backend shows QEMU.

    vu_proxy.py --listen PROXY_SOCKET --backend BACKEND_SOCKET --log EVENTS.jsonl

QEMU connects to PROXY_SOCKET (-chardev socket,path=PROXY_SOCKET); the proxy connects to the backend and
forwards every vhost-user message both ways, file descriptors included (SCM_RIGHTS), recording the name of
each request QEMU sends (one JSON line, dir "vu"). When QEMU hands the
backend its display channel (VHOST_USER_GPU_SET_SOCKET, request 33) the proxy puts itself in the middle of
that channel too, and writes one JSON line per message the backend sends QEMU on it (SCANOUT, UPDATE,
CURSOR_POS, CURSOR_POS_HIDE, CURSOR_UPDATE with its 64x64 image as hex, ...). display.sh reads the cursor
messages there: QEMU keeps the cursor apart from the surface and its screendump never shows it. Likewise for
the backend request channel (VHOST_USER_SET_BACKEND_REQ_FD, request 21): each request the backend sends QEMU
there is recorded (dir "backend-req"; SHARED_OBJECT_* with its UUID), and the backend's replies to
GET_SHARED_OBJECT (dir "vu-reply", with the number of fds) are recorded on the main channel. virgl.sh's share
case reads the UUID and the fd hand-over there.

Everything else passes unchanged; the proxy ends when either side closes. Python 3.9+ stdlib only.
"""
import argparse
import json
import os
import socket
import struct
import sys
import threading
import time
import uuid

VHOST_USER_GPU_SET_SOCKET = 33
VHOST_USER_SET_BACKEND_REQ_FD = 21
VHOST_USER_GET_SHARED_OBJECT = 41
HDR = struct.Struct("<III")  # request, flags, size: vhost-user and the vhost-user-gpu display protocol alike
MAX_FDS = 32
GPU_REQUESTS = {
    1: "GET_PROTOCOL_FEATURES", 2: "SET_PROTOCOL_FEATURES", 3: "GET_DISPLAY_INFO", 4: "CURSOR_POS",
    5: "CURSOR_POS_HIDE", 6: "CURSOR_UPDATE", 7: "SCANOUT", 8: "UPDATE", 9: "DMABUF_SCANOUT",
    10: "DMABUF_UPDATE", 11: "GET_EDID", 12: "DMABUF_SCANOUT2",
}

# vhost-user.rst's front-end requests, recorded by name as QEMU sends them (dir "vu"): the tests' oracles read
# what the frontend asked (RESET_DEVICE on a guest device reset, ...) here, not in the backend's log wording.
VU_REQUESTS = {
    1: "GET_FEATURES", 2: "SET_FEATURES", 3: "SET_OWNER", 4: "RESET_OWNER", 5: "SET_MEM_TABLE", 8: "SET_VRING_NUM",
    9: "SET_VRING_ADDR", 10: "SET_VRING_BASE", 11: "GET_VRING_BASE", 12: "SET_VRING_KICK", 13: "SET_VRING_CALL",
    14: "SET_VRING_ERR", 15: "GET_PROTOCOL_FEATURES", 16: "SET_PROTOCOL_FEATURES", 17: "GET_QUEUE_NUM",
    18: "SET_VRING_ENABLE", 21: "SET_BACKEND_REQ_FD", 24: "GET_CONFIG", 25: "SET_CONFIG", 34: "RESET_DEVICE",
    36: "GET_MAX_MEM_SLOTS", 37: "ADD_MEM_REG", 38: "REM_MEM_REG", 39: "SET_STATUS", 40: "GET_STATUS",
    41: "GET_SHARED_OBJECT", 42: "SET_DEVICE_STATE_FD", 43: "CHECK_DEVICE_STATE", 44: "GET_SHMEM_CONFIG",
}

# vhost-user.rst's back-end requests (the backend request channel), recorded by name (dir "backend-req").
BACKEND_REQUESTS = {
    1: "IOTLB_MSG", 2: "CONFIG_CHANGE_MSG", 3: "VRING_HOST_NOTIFIER_MSG", 4: "VRING_CALL", 5: "VRING_ERR",
    6: "SHARED_OBJECT_ADD", 7: "SHARED_OBJECT_REMOVE", 8: "SHARED_OBJECT_LOOKUP", 9: "SHMEM_MAP", 10: "SHMEM_UNMAP",
}

T0 = time.monotonic()
log_lock = threading.Lock()
log_file = None
done = threading.Event()


def event(**fields):
    fields = {"t": round(time.monotonic() - T0, 4), **fields}
    with log_lock:
        log_file.write(json.dumps(fields) + "\n")
        log_file.flush()


def recv_exact(sock, n, fds):
    """n bytes from sock; descriptors that come with them are appended to fds. None on EOF at a boundary."""
    buf = bytearray()
    while len(buf) < n:
        data, got_fds, _, _ = socket.recv_fds(sock, n - len(buf), MAX_FDS)
        fds.extend(got_fds)
        if not data:
            if buf:
                raise EOFError(f"connection closed inside a message ({len(buf)} of {n} bytes)")
            return None
        buf += data
    return bytes(buf)


def send_all(sock, data, fds):
    sent = socket.send_fds(sock, [data], fds) if fds else sock.send(data)
    if sent < len(data):
        sock.sendall(data[sent:])
    for fd in fds:
        os.close(fd)


def read_message(sock):
    fds = []
    hdr = recv_exact(sock, HDR.size, fds)
    if hdr is None:
        return None
    request, flags, size = HDR.unpack(hdr)
    payload = recv_exact(sock, size, fds) if size else b""
    if payload is None:
        raise EOFError("connection closed before the payload")
    return request, flags, hdr, payload, fds


def pump_raw(src, dst, name, ends_proxy=True):
    """Bytes and descriptors from src to dst, unparsed. The vhost-user connection ending ends the proxy; a
    display channel ending does not (QEMU sends a new one at every device start: boot, resume, after a reset)."""
    try:
        while True:
            data, fds, _, _ = socket.recv_fds(src, 1 << 16, MAX_FDS)
            if not data:
                break
            send_all(dst, data, fds)
    except OSError as e:
        event(dir=name, error=str(e))
    finally:
        if ends_proxy:
            stop(name)
        else:
            event(dir=name, closed=True)


def describe_gpu(request, flags, payload):
    f = {"req": GPU_REQUESTS.get(request, request)}
    if flags:
        f["flags"] = flags
    if request in (4, 5) and len(payload) >= 12:
        f["scanout"], f["x"], f["y"] = struct.unpack_from("<III", payload)
    elif request == 6 and len(payload) >= 20 + 64 * 64 * 4:
        scanout, x, y, hot_x, hot_y = struct.unpack_from("<IIIII", payload)
        f.update(scanout=scanout, x=x, y=y, hot_x=hot_x, hot_y=hot_y, data=payload[20:20 + 64 * 64 * 4].hex())
    elif request == 7 and len(payload) >= 12:
        f["scanout"], f["width"], f["height"] = struct.unpack_from("<III", payload)
    elif request == 8 and len(payload) >= 20:
        f["scanout"], f["x"], f["y"], f["width"], f["height"] = struct.unpack_from("<IIIII", payload)
        f["data_bytes"] = len(payload) - 20
    else:
        f["size"] = len(payload)
    return f


def pump_messages(src, dst, name, forward):
    """vhost-user framed messages from src to dst until src closes; forward(request, flags, payload, fds) records
    one and returns the descriptors to send with it. An error is recorded on channel name."""
    try:
        while True:
            msg = read_message(src)
            if msg is None:
                break
            request, flags, hdr, payload, fds = msg
            send_all(dst, hdr + payload, forward(request, flags, payload, fds))
    except (OSError, EOFError) as e:
        event(dir=name, error=str(e))


def pump_gpu(backend_side, qemu_side):
    """The display channel, backend to QEMU: parsed and recorded."""
    def record(request, flags, payload, fds):
        event(dir="gpu", **describe_gpu(request, flags, payload))
        return fds

    pump_messages(backend_side, qemu_side, "gpu", record)
    event(dir="gpu", closed=True)  # an old display channel QEMU replaced; the proxy goes on
    for s in (backend_side, qemu_side):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def pump_backend_req(backend_side, qemu_side):
    """The backend request channel, backend to QEMU: each request recorded, SHARED_OBJECT_* with its UUID."""
    def record(request, flags, payload, fds):
        f = {"req": BACKEND_REQUESTS.get(request, request)}
        if request in (6, 7, 8) and len(payload) >= 16:
            f["uuid"] = str(uuid.UUID(bytes=bytes(payload[:16])))
        event(dir="backend-req", fds=len(fds), **f)
        return fds

    pump_messages(backend_side, qemu_side, "backend-req", record)
    event(dir="backend-req", closed=True)


# The channels the frontend hands the backend that the proxy sits in the middle of: request -> (name, the
# pump for backend-to-QEMU messages). QEMU's answers on them pass unparsed.
INTERCEPTED = {
    VHOST_USER_GPU_SET_SOCKET: ("GPU_SET_SOCKET", pump_gpu, "gpu-replies"),
    VHOST_USER_SET_BACKEND_REQ_FD: ("SET_BACKEND_REQ_FD", pump_backend_req, "backend-req-replies"),
}


def intercept_frontend(request, flags, payload, fds):
    """One vhost-user request, QEMU to backend: recorded; the channel fd of an INTERCEPTED request is swapped for
    one end of a socket pair whose other end is relayed to QEMU's."""
    if request not in INTERCEPTED or len(fds) != 1:
        event(dir="vu", req=VU_REQUESTS.get(request, request))
        return fds
    name, pump, replies = INTERCEPTED[request]
    qemu_end = socket.socket(fileno=fds[0])
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    threading.Thread(target=pump, args=(ours, qemu_end), daemon=True).start()
    threading.Thread(target=pump_raw, args=(qemu_end, ours, replies, False), daemon=True).start()
    fds = [os.dup(theirs.fileno())]
    theirs.close()
    event(dir="vu", req=name, note="channel intercepted")
    return fds


def pump_backend_replies(backend, qemu):
    """vhost-user replies, backend to QEMU: GET_SHARED_OBJECT's recorded with its fd count (dir "vu-reply")."""
    def record(request, flags, payload, fds):
        if request == VHOST_USER_GET_SHARED_OBJECT:
            value = struct.unpack_from("<Q", payload)[0] if len(payload) >= 8 else None
            event(dir="vu-reply", req=VU_REQUESTS[request], fds=len(fds), value=value)
        return fds

    try:
        pump_messages(backend, qemu, "vu-replies", record)
    finally:
        stop("vu-replies")


def pump_frontend(qemu, backend):
    """vhost-user requests, QEMU to backend: parsed to catch VHOST_USER_GPU_SET_SOCKET."""
    try:
        pump_messages(qemu, backend, "vu", intercept_frontend)
    finally:
        stop("vu")


def stop(name):
    if not done.is_set():
        event(dir=name, closed=True)
    done.set()


def main():
    global log_file
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", required=True)
    ap.add_argument("--backend", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--connect-timeout", type=float, default=15)
    a = ap.parse_args()
    log_file = open(a.log, "a", buffering=1)

    backend = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + a.connect_timeout
    while True:
        try:
            backend.connect(a.backend)
            break
        except OSError as e:
            if time.monotonic() > deadline:
                sys.exit(f"vu_proxy: cannot connect to the backend at {a.backend}: {e}")
            time.sleep(0.05)
    event(dir="vu", note="connected to the backend")

    tmp = a.listen + ".tmp"
    if os.path.exists(tmp):
        os.unlink(tmp)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(tmp)
    listener.listen(1)
    os.rename(tmp, a.listen)  # appears only once it accepts
    qemu, _ = listener.accept()
    listener.close()
    event(dir="vu", note="QEMU connected")
    threading.Thread(target=pump_frontend, args=(qemu, backend), daemon=True).start()
    threading.Thread(target=pump_backend_replies, args=(backend, qemu), daemon=True).start()
    done.wait()
    time.sleep(0.2)  # let the other direction flush what it holds
    for s in (qemu, backend):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


if __name__ == "__main__":
    main()
