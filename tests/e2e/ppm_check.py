#!/usr/bin/env python3
"""Pixel checks for display.sh (Python 3 stdlib only).

    ppm_check.py check FILE.ppm --size WxH --draw SPEC...       compare a screendump with the expected frame
    ppm_check.py poll --qmp SOCK --out FILE.ppm [--device ID] [--head N] --timeout S --size WxH --draw SPEC...
                                                                screendump through QMP until the frame matches
    ppm_check.py cursor --events EVENTS.jsonl --scanout N --hot X,Y --pos X,Y --timeout S
                                                                wait for vu_proxy.py to have seen the cursor
    ppm_check.py busy --qmp SOCK --out FILE.ppm [--size WxH] [--min-colours N] --timeout S
                                                                screendump until a frame has at least N colours
                                                                and differs from the one before (an animation
                                                                such as kmscube runs on the screen)
    ppm_check.py topng FILE.ppm FILE.png                        convert a binary PPM (P6) to PNG

poll and busy take their frames from QMP screendumps (--qmp), or, where QEMU has no display for the device
(the generic vhost-user-test-device-pci), from our backend's headless display: --backend-pid PID
--backend-log LOG --png DIR/scanout-N.png sends the backend SIGUSR1, waits for one more `SIGUSR1: wrote`
line in its log (info level), and reads the PNG (8-bit grey/RGB/RGBA, any filter) into --out as a PPM.

The expected frame is built from --draw SPECs, applied in order on a black canvas of --size:
    quad-a | quad-b              the guest's quadrant patterns (white 1-pixel border), full frame
    gradient:X,Y,W,H             the guest's position-dependent gradient in that rectangle
    fill:X,Y,W,H:RRGGBB          a solid rectangle
    tri:X,Y,W,H:RRGGBB           a solid right triangle (X,Y), (X+W,Y), (X,Y+H): the pixels whose centres are
                                 strictly inside; refused when a pixel centre lies on the hypotenuse
    gl-a | gl-b                  the frames of the 3D guest's gl-draw (clear colour, fill, tri), full frame
Every pixel is compared, with a tolerance of 0. The patterns mirror tests/e2e/guest/vgpu-draw.c and
tests/e2e/guest/3d/gl-draw.c (their header comments define them): change both together.
"""
import argparse
import json
import os
import socket
import struct
import sys
import time
import zlib

QUAD = {
    "quad-a": (0xFF0000, 0x00FF00, 0x0000FF, 0xC08040),
    "quad-b": (0x00FFFF, 0xFF00FF, 0xFFFF00, 0x4080C0),
}
WHITE = 0xFFFFFF
# gl-draw.c's frames, drawn in order on a canvas of the mode's size (the first entry is the clear colour).
GL_FRAMES = {
    "gl-a": ("fill:0,0,{w},{h}:203040", "fill:160,120,320,200:e0c020", "tri:700,100,128,256:30d070"),
    "gl-b": ("fill:0,0,{w},{h}:402010", "fill:600,400,256,128:20a0e0", "tri:100,300,100,200:d03070"),
}


def rgb(c):
    return bytes(((c >> 16) & 0xFF, (c >> 8) & 0xFF, c & 0xFF))


def gradient(x, y):
    return ((x * 3) & 0xFF) << 16 | ((y * 5) & 0xFF) << 8 | (((x + y) & 0xFF) ^ 0xA5)


def cursor_pixel(x, y):
    if x == y:
        return 0xFFFFFFFF
    if x < 32:
        return 0xFFFF0000 if y < 32 else 0x00000000
    return 0x8000FF00 if y < 32 else 0xFF0000FF


def cursor_bytes():
    return b"".join(struct.pack("<I", cursor_pixel(x, y)) for y in range(64) for x in range(64))


# --- PPM / PNG --------------------------------------------------------------------------------------------------

def read_ppm(path):
    with open(path, "rb") as f:
        data = f.read()
    fields, pos = [], 0
    while len(fields) < 4:
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while end < len(data) and not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    pos += 1  # the single whitespace after maxval
    if fields[0] != b"P6":
        raise ValueError(f"{path}: not a binary PPM (magic {fields[0]!r})")
    w, h, maxval = int(fields[1]), int(fields[2]), int(fields[3])
    if maxval != 255:
        raise ValueError(f"{path}: maxval {maxval}, expected 255")
    pixels = data[pos:pos + w * h * 3]
    if len(pixels) != w * h * 3:
        raise ValueError(f"{path}: truncated ({len(pixels)} of {w * h * 3} pixel bytes)")
    return w, h, pixels


def write_ppm(path, w, h, pixels):
    with open(path, "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (w, h))
        f.write(pixels)


def write_png(path, w, h, pixels):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    stride = w * 3
    raw = b"".join(b"\x00" + pixels[y * stride:(y + 1) * stride] for y in range(h))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
           chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    with open(path + ".tmp", "wb") as f:
        f.write(png)
    os.replace(path + ".tmp", path)


def read_png(path):
    """(w, h, RGB bytes) of a non-interlaced 8-bit PNG (grey, RGB, grey+alpha or RGBA; alpha dropped)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, hdr = 8, [], None
    while pos + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if hdr is None:
        raise ValueError(f"{path}: no IHDR")
    w, h, depth, ctype, _, _, interlace = hdr
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(ctype)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"{path}: unsupported PNG (depth {depth}, colour type {ctype}, interlace {interlace})")
    raw = zlib.decompress(b"".join(idat))
    bpp, stride = channels, w * channels
    if len(raw) != h * (stride + 1):
        raise ValueError(f"{path}: {len(raw)} bytes of image data, expected {h * (stride + 1)}")
    out, prev = bytearray(), bytearray(stride)
    for y in range(h):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 0xFF
        elif ftype == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        elif ftype != 0:
            raise ValueError(f"{path}: bad filter type {ftype} in row {y}")
        out += line
        prev = line
    if channels == 3:
        return w, h, bytes(out)
    rgbpx = bytearray(w * h * 3)
    for i in range(w * h):
        px = out[i * channels:(i + 1) * channels]
        rgbpx[i * 3:i * 3 + 3] = px[:3] if channels >= 3 else bytes((px[0],)) * 3
    return w, h, bytes(rgbpx)


# --- the expected frame -----------------------------------------------------------------------------------------

class Canvas:
    def __init__(self, w, h):
        self.w, self.h = w, h
        self.px = bytearray(w * h * 3)

    def fill(self, x, y, w, h, colour):
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, self.w), min(y + h, self.h)
        if x1 <= x0 or y1 <= y0:
            return
        row = rgb(colour) * (x1 - x0)
        for yy in range(y0, y1):
            off = (yy * self.w + x0) * 3
            self.px[off:off + len(row)] = row

    def quad(self, colours):
        w, h = self.w, self.h
        self.fill(0, 0, w, h, WHITE)
        self.fill(1, 1, w // 2 - 1, h // 2 - 1, colours[0])
        self.fill(w // 2, 1, w - 1 - w // 2, h // 2 - 1, colours[1])
        self.fill(1, h // 2, w // 2 - 1, h - 1 - h // 2, colours[2])
        self.fill(w // 2, h // 2, w - 1 - w // 2, h - 1 - h // 2, colours[3])

    def tri(self, x, y, w, h, colour):
        # Pixel (x+i, y+j) is inside when its centre is strictly inside the hypotenuse:
        # (2i+1)*h + (2j+1)*w < 2*w*h (gl-draw.c uses the same rule for its own readback check).
        c = rgb(colour)
        for j in range(h):
            yy = y + j
            if not 0 <= yy < self.h:
                continue
            for i in range(w):
                edge = (2 * i + 1) * h + (2 * j + 1) * w - 2 * w * h
                if edge == 0:
                    raise ValueError(f"tri:{x},{y},{w},{h}: pixel centre ({x + i},{yy}) lies on the hypotenuse")
                if edge < 0 and 0 <= x + i < self.w:
                    off = (yy * self.w + x + i) * 3
                    self.px[off:off + 3] = c

    def gradient(self, x, y, w, h):
        for yy in range(max(y, 0), min(y + h, self.h)):
            for xx in range(max(x, 0), min(x + w, self.w)):
                off = (yy * self.w + xx) * 3
                self.px[off:off + 3] = rgb(gradient(xx, yy))

    def draw(self, spec):
        kind, _, args = spec.partition(":")
        if kind in QUAD and not args:
            self.quad(QUAD[kind])
        elif kind == "gradient":
            self.gradient(*ints(args, 4))
        elif kind in ("fill", "tri"):
            rect, _, colour = args.partition(":")
            getattr(self, kind)(*ints(rect, 4), int(colour, 16))
        elif kind in GL_FRAMES and not args:
            for part in GL_FRAMES[kind]:
                self.draw(part.format(w=self.w, h=self.h))
        else:
            raise ValueError(f"bad --draw {spec!r} (quad-a, quad-b, gl-a, gl-b, gradient:X,Y,W,H, "
                             f"fill:X,Y,W,H:RRGGBB, tri:X,Y,W,H:RRGGBB)")


def ints(text, n):
    vals = [int(v) for v in text.split(",")]
    if len(vals) != n:
        raise ValueError(f"expected {n} comma-separated integers, got {text!r}")
    return vals


def parse_size(text):
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def expected_frame(size, draws):
    c = Canvas(*size)
    for d in draws:
        c.draw(d)
    return c


def describe_mismatch(w, h, got, want):
    """A short report: how many pixels differ, where, samples, and the frame's dominant colours."""
    bad, x0, y0, x1, y1, samples = 0, w, h, -1, -1, []
    stride = w * 3
    for y in range(h):
        a, b = got[y * stride:(y + 1) * stride], want[y * stride:(y + 1) * stride]
        if a == b:
            continue
        for x in range(w):
            if a[x * 3:x * 3 + 3] != b[x * 3:x * 3 + 3]:
                bad += 1
                x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x), max(y1, y)
                if len(samples) < 4 or (len(samples) < 6 and x == x1 and y == y1):
                    samples.append(f"({x},{y}) got {a[x * 3:x * 3 + 3].hex()} want {b[x * 3:x * 3 + 3].hex()}")
    hist = {}
    for off in range(0, len(got), 3 * 97):  # sampled
        k = got[off:off + 3].hex()
        hist[k] = hist.get(k, 0) + 1
    top = sorted(hist.items(), key=lambda kv: -kv[1])[:4]
    total = sum(hist.values())
    colours = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in top)
    return (f"{bad} of {w * h} pixels differ, within x {x0}..{x1} y {y0}..{y1}; e.g. {'; '.join(samples)}; "
            f"frame colours: {colours}")


def compare(path, size, draws, save_expected=None):
    """(ok, message)."""
    try:
        w, h, px = read_ppm(path)
    except (OSError, ValueError) as e:
        return False, f"unreadable screendump: {e}"
    if (w, h) != size:
        return False, f"screendump is {w}x{h}, expected {size[0]}x{size[1]}"
    exp = expected_frame(size, draws)
    if px == exp.px:
        return True, f"{w}x{h}, all {w * h} pixels as expected"
    if save_expected:
        write_ppm(save_expected, w, h, bytes(exp.px))
    return False, describe_mismatch(w, h, px, exp.px)


# --- QMP --------------------------------------------------------------------------------------------------------

class Qmp:
    def __init__(self, path, timeout=15):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.f = self.sock.makefile("rwb")
        if "QMP" not in self.recv():
            raise RuntimeError("no QMP greeting")
        self.call("qmp_capabilities")

    def recv(self):
        while True:
            line = self.f.readline()
            if not line:
                raise RuntimeError("QMP connection closed by QEMU")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def call(self, name, **args):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        self.f.write(json.dumps(req).encode() + b"\n")
        self.f.flush()
        msg = self.recv()
        if "error" in msg:
            raise RuntimeError(f"{name}: {msg['error'].get('class')}: {msg['error'].get('desc')}")
        return msg.get("return")


class BackendShots:
    """Frames from our backend's headless display: SIGUSR1 writes the PNG, its log says when."""

    MARK = b"SIGUSR1: wrote "

    def __init__(self, pid, log, png, timeout=10):
        self.pid, self.log, self.png, self.timeout = pid, log, png, timeout

    def count(self):
        try:
            with open(self.log, "rb") as f:
                return sum(1 for line in f if self.MARK in line and self.png.encode() in line)
        except OSError:
            return 0

    def shoot(self, out):
        before = self.count()
        try:
            os.kill(self.pid, 10)  # SIGUSR1
        except OSError as e:
            raise RuntimeError(f"backend closed: cannot signal pid {self.pid}: {e}")
        deadline = time.monotonic() + self.timeout
        while self.count() <= before:
            if time.monotonic() >= deadline:
                raise OSError(f"no 'SIGUSR1: wrote {self.png}' in {self.log} within {self.timeout}s "
                              f"(no active scanout, or the log level is above info)")
            time.sleep(0.05)
        w, h, px = read_png(self.png)
        write_ppm(out, w, h, px)


def frame_source(a):
    """shoot(out): writes the current frame to `out` as a PPM (QMP screendump or the backend's PNG)."""
    if a.backend_pid:
        if not (a.backend_log and a.png):
            raise SystemExit("--backend-pid needs --backend-log and --png")
        return BackendShots(a.backend_pid, a.backend_log, a.png).shoot
    if not a.qmp:
        raise SystemExit("give --qmp SOCK, or --backend-pid PID --backend-log LOG --png FILE")
    qmp = Qmp(a.qmp)
    extra = {}
    if getattr(a, "device", None):
        extra["device"] = a.device
    if getattr(a, "head", None) is not None:
        extra["head"] = a.head
    return lambda out: qmp.call("screendump", filename=out, **extra)


def shoot_until(a, judge, errors):
    """Frames into a.out (the last one removed first) until judge(path) says (True, msg), a.timeout has passed or
    the frame source closed; an exception of the types errors counts as a failed frame. Returns (ok, frames taken,
    the last msg, seconds)."""
    out = os.path.abspath(a.out)
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    shoot = frame_source(a)
    n, msg = 0, "no screendump taken"
    while True:
        n += 1
        try:
            if os.path.exists(out):
                os.unlink(out)
            shoot(out)
            ok, msg = judge(out)
            if ok:
                return True, n, msg, time.monotonic() - t0
        except errors as e:
            msg = f"screendump failed: {e}"
            if isinstance(e, RuntimeError) and "closed" in str(e):
                break
        if time.monotonic() >= deadline:
            break
        time.sleep(a.interval)
    return False, n, msg, time.monotonic() - t0


def poll(a):
    size = parse_size(a.size)
    out = os.path.abspath(a.out)
    ok, n, msg, secs = shoot_until(a, lambda path: compare(path, size, a.draw), (RuntimeError, OSError))
    if ok:
        print(f"match after {n} screendump(s), {secs:.2f}s: {msg}")
        return 0
    if a.save_expected and os.path.exists(out):
        compare(out, size, a.draw, a.save_expected)
    print(f"no match in {n} screendump(s) over {secs:.2f}s: {msg}")
    return 1


def busy(a):
    """Screendumps until one has >= min_colours distinct colours and differs from the previous one."""
    size = parse_size(a.size) if a.size else None
    prev = None

    def judge(path):
        nonlocal prev
        w, h, px = read_ppm(path)
        colours = len({px[i:i + 3] for i in range(0, len(px), 3 * 7)})  # every 7th pixel
        moved = prev is not None and px != prev
        msg = f"{w}x{h}, {colours} colours (every 7th pixel), {'changed' if moved else 'unchanged'}"
        prev = px
        if size and (w, h) != size:
            return False, msg + f"; expected {size[0]}x{size[1]}"
        return colours >= a.min_colours and moved, msg

    ok, n, msg, secs = shoot_until(a, judge, (RuntimeError, OSError, ValueError))
    if ok:
        print(f"busy after {n} screendump(s), {secs:.2f}s: {msg}")
        return 0
    print(f"not busy in {n} screendump(s) over {secs:.2f}s: last {msg}")
    return 1


# --- cursor (vu_proxy.py's record) --------------------------------------------------------------------------------

def cursor(a):
    want_data = cursor_bytes().hex()
    hot, pos = ints(a.hot, 2), ints(a.pos, 2)
    deadline = time.monotonic() + a.timeout
    while True:
        events = []
        try:
            with open(a.events) as f:
                for line in f:
                    try:
                        events.append(json.loads(line))
                    except ValueError:
                        pass
        except OSError:
            pass
        msgs = [e for e in events if e.get("dir") == "gpu" and str(e.get("req", "")).startswith("CURSOR")]
        msgs = [e for e in msgs if e.get("scanout") == a.scanout]
        updates = [e for e in msgs if e["req"] == "CURSOR_UPDATE"]
        problems = []
        good_update = [u for u in updates if u.get("data") == want_data and [u["hot_x"], u["hot_y"]] == hot]
        if not updates:
            problems.append(f"no CURSOR_UPDATE for scanout {a.scanout}")
        elif not good_update:
            u = updates[-1]
            got = bytes.fromhex(u.get("data", ""))
            want = bytes.fromhex(want_data)
            diff = [i // 4 for i in range(0, min(len(got), len(want)), 4) if got[i:i + 4] != want[i:i + 4]]
            problems.append(f"CURSOR_UPDATE hot {u['hot_x']},{u['hot_y']} (want {hot[0]},{hot[1]}), "
                            f"{len(diff)} of 4096 cursor pixels differ" +
                            (f", first at ({diff[0] % 64},{diff[0] // 64}) got "
                             f"{struct.unpack_from('<I', got, diff[0] * 4)[0]:08x} want "
                             f"{cursor_pixel(diff[0] % 64, diff[0] // 64):08x}" if diff and got else ""))
        if msgs:
            last = msgs[-1]
            if last["req"] == "CURSOR_POS_HIDE":
                problems.append("the last cursor message hides the cursor")
            elif [last["x"], last["y"]] != pos:
                problems.append(f"the cursor is last at {last['x']},{last['y']} ({last['req']}), want {pos[0]},{pos[1]}")
        if not problems:
            u = good_update[-1]
            print(f"CURSOR_UPDATE 64x64 image as drawn, hot {u['hot_x']},{u['hot_y']}; cursor at "
                  f"{msgs[-1]['x']},{msgs[-1]['y']} ({len(updates)} update(s), "
                  f"{sum(1 for m in msgs if m['req'] == 'CURSOR_POS')} move(s))")
            return 0
        if time.monotonic() >= deadline:
            nlog = sum(1 for e in events if e.get("dir") == "gpu")
            print("; ".join(problems) + f" ({nlog} display-channel messages recorded)")
            return 1
        time.sleep(0.1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("file")
    p = sub.add_parser("poll")
    p.add_argument("--qmp")
    p.add_argument("--out", required=True)
    p.add_argument("--device")
    p.add_argument("--head", type=int)
    p.add_argument("--timeout", type=float, default=20)
    p.add_argument("--interval", type=float, default=0.2)
    for q in (c, p):
        q.add_argument("--size", required=True)
        q.add_argument("--draw", action="append", default=[])
        q.add_argument("--save-expected", help="on a mismatch, write the expected frame (PPM) here")
    k = sub.add_parser("cursor")
    k.add_argument("--events", required=True)
    k.add_argument("--scanout", type=int, default=0)
    k.add_argument("--hot", required=True)
    k.add_argument("--pos", required=True)
    k.add_argument("--timeout", type=float, default=20)
    b = sub.add_parser("busy")
    b.add_argument("--qmp")
    b.add_argument("--out", required=True)
    b.add_argument("--size")
    b.add_argument("--min-colours", type=int, default=16)
    b.add_argument("--timeout", type=float, default=30)
    b.add_argument("--interval", type=float, default=0.5)
    for q in (p, b):
        q.add_argument("--backend-pid", type=int, help="take frames from this backend's SIGUSR1 PNGs")
        q.add_argument("--backend-log", help="its log (info level: `SIGUSR1: wrote PATH` lines)")
        q.add_argument("--png", help="the PNG it writes (--screenshot-dir DIR: DIR/scanout-0.png)")
    t = sub.add_parser("topng")
    t.add_argument("ppm")
    t.add_argument("png")
    a = ap.parse_args()
    if a.cmd == "check":
        ok, msg = compare(a.file, parse_size(a.size), a.draw, a.save_expected)
        print(msg)
        return 0 if ok else 1
    if a.cmd == "poll":
        return poll(a)
    if a.cmd == "cursor":
        return cursor(a)
    if a.cmd == "busy":
        return busy(a)
    w, h, px = read_ppm(a.ppm)
    write_png(a.png, w, h, px)
    print(f"{a.png}: {w}x{h} PNG")
    return 0


if __name__ == "__main__":
    sys.exit(main())
