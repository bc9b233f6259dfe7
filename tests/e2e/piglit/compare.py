#!/usr/bin/env python3
"""Compare two piglit runs of piglit.sh: the vtest reference and our device.

    compare.py VTEST OURS [--list FILE] [--ours-status FILE] [--allow FILE] [--md FILE] [--title TEXT]
               [--info KEY=VALUE]...

VTEST and OURS are result files of guest/3d/piglit-run.sh -o (or virgl.sh's piglit case): one line per test,
`result<TAB>seconds<TAB>detail<TAB>name`. Prints the counts of pass/fail/skip/warn/crash of each side and every
test whose results differ, and exits 1 when

  * a test passes (or warns) through vtest but not through our device,
  * a test crashes (signal or timeout) on our device but not through vtest,
  * a test of --list has no result on our side (the guest or the device died before it ran),
  * --ours-status (virgl.sh's piglit status.txt) does not say `result PASS` (the backend died, crashed, or the
    case did not complete),
  * fewer than --min-reference-pass (default 0.5) of the tests pass or warn through vtest: a reference that broke
    (no server, a software fallback that failed) would otherwise make every comparison pass,

unless the test's name is in --allow (a file, one test name per line, `#` comments; VGPU_PIGLIT_ALLOW in
piglit.sh; empty by default). --md writes a markdown report: both runs' counts, the differences, then every
test with both results and times, to be committed under tests/e2e/piglit/results/.
"""

import argparse
import sys

RESULTS = ["pass", "fail", "skip", "warn", "crash"]
GOOD = {"pass", "warn"}


def read_results(path):
    res = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            parts = line.split("\t", 3)
            if len(parts) != 4:
                sys.exit(f"compare: {path}: malformed line: {line!r}")
            result, secs, detail, name = parts
            res[name] = (result, secs, detail)
    return res


def read_names(path):
    names = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if line.strip() and not line.startswith("#"):
                names.append(line.split("\t", 1)[0])
    return names


def counts(res, names):
    c = {r: 0 for r in RESULTS + ["missing"]}
    for n in names:
        r = res.get(n, ("missing",))[0]
        c[r if r in c else "fail"] += 1
    return c


def seconds(res):
    vals = []
    for r in res.values():
        try:
            vals.append(float(r[1]))
        except ValueError:
            pass
    return vals


def md_escape(s):
    return s.replace("|", "\\|")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("vtest")
    ap.add_argument("ours")
    ap.add_argument("--list", help="the test list (tests with no result on our side are missing)")
    ap.add_argument("--ours-status", help="virgl.sh's piglit status.txt")
    ap.add_argument("--allow", help="file of test names whose differences do not fail")
    ap.add_argument("--md", help="write the markdown report here")
    ap.add_argument("--title", default="piglit: our device against vtest")
    ap.add_argument("--info", action="append", default=[], help="KEY=VALUE lines for the report's header")
    ap.add_argument("--min-reference-pass", type=float, default=0.5,
                    help="the least share of tests that must pass or warn through vtest (0 to 1)")
    args = ap.parse_args()

    vt = read_results(args.vtest)
    ours = read_results(args.ours)
    names = read_names(args.list) if args.list else sorted(set(vt) | set(ours))
    allow = set()
    if args.allow:
        allow = set(read_names(args.allow))
    status = {}
    if args.ours_status:
        try:
            with open(args.ours_status, encoding="utf-8") as f:
                for line in f:
                    k, _, v = line.rstrip("\n").partition(" ")
                    status[k] = v
        except OSError as e:
            status = {"result": f"unreadable status file ({e})"}

    missing = ("missing", "", "no result")
    diffs, failing = [], []
    for n in names:
        v = vt.get(n, missing)
        o = ours.get(n, missing)
        if v[0] == o[0]:
            continue
        why = ""
        if v[0] in GOOD and o[0] not in GOOD:
            why = f"{v[0]} through vtest, {o[0]} on our device"
        elif o[0] == "crash" and v[0] != "crash":
            why = f"crash on our device ({o[2] or 'signal'}), {v[0]} through vtest"
        elif o[0] == "missing":
            why = "no result on our device"
        diffs.append((n, v, o, why))
        if why and n not in allow:
            failing.append((n, why))
    status_bad = bool(args.ours_status) and status.get("result") != "PASS"
    reference_good = sum(1 for n in names if vt.get(n, missing)[0] in GOOD)
    reference_bad = reference_good < args.min_reference_pass * len(names)

    cv, co = counts(vt, names), counts(ours, names)
    out = []
    out.append(f"{'':8} " + " ".join(f"{r:>7}" for r in RESULTS + ["missing"]) + "    total")
    for label, c in (("vtest", cv), ("ours", co)):
        out.append(f"{label:8} " + " ".join(f"{c[r]:7}" for r in RESULTS + ["missing"]) + f" {len(names):8}")
    out.append("")
    if diffs:
        out.append(f"{len(diffs)} tests differ (vtest -> ours):")
        for n, v, o, why in diffs:
            mark = "FAIL " if why and n not in allow else ("allow" if why else "     ")
            out.append(f"  {mark} {v[0]:>7} -> {o[0]:<7} {n}{'  (' + o[2] + ')' if o[2] else ''}")
    else:
        out.append("no test differs")
    if args.ours_status:
        out.append(f"our device's run: {status.get('result', '?')}; backend {status.get('backend', '?')}"
                   f"{'; ' + status['detail'] if status.get('detail') else ''}")
    if reference_bad:
        out.append(f"the vtest reference passed only {reference_good} of {len(names)} tests (less than "
                   f"{args.min_reference_pass:.0%}): it is broken, so nothing can be compared")
    verdict = "FAILED" if failing or status_bad or reference_bad else "PASSED"
    out.append(f"piglit compare {verdict}: {len(failing)} tests fail only on our device"
               f"{' (allowed: ' + str(sum(1 for d in diffs if d[3] and d[0] in allow)) + ')' if allow else ''}"
               f"{'; our run did not pass (status ' + status.get('result', '?') + ')' if status_bad else ''}")
    print("\n".join(out))

    if args.md:
        vs, os_ = seconds(vt), seconds(ours)
        md = [f"# {args.title}", ""]
        for kv in args.info:
            k, _, v = kv.partition("=")
            md.append(f"- {k}: {v}")
        md.append(f"- tests: {len(names)}; per-test seconds: vtest median "
                  f"{sorted(vs)[len(vs) // 2] if vs else 0:.1f} (sum {sum(vs):.0f}), ours median "
                  f"{sorted(os_)[len(os_) // 2] if os_ else 0:.1f} (sum {sum(os_):.0f})")
        if args.ours_status:
            md.append(f"- our device's run: {status.get('result', '?')}; backend {status.get('backend', '?')}")
        md.append(f"- verdict: **{verdict}** ({len(failing)} tests fail only on our device)")
        md += ["", "| run | " + " | ".join(RESULTS + ["missing"]) + " |",
               "|---|" + "---:|" * (len(RESULTS) + 1)]
        for label, c in (("vtest", cv), ("ours", co)):
            md.append(f"| {label} | " + " | ".join(str(c[r]) for r in RESULTS + ["missing"]) + " |")
        md += ["", "## Differences", ""]
        if diffs:
            md += ["| test | vtest | ours | ours: detail | fails the run |", "|---|---|---|---|---|"]
            for n, v, o, why in diffs:
                flag = "allowed" if why and n in allow else ("yes" if why else "")
                md.append(f"| {md_escape(n)} | {v[0]} | {o[0]} | {md_escape(o[2])} | {flag} |")
        else:
            md.append("none")
        md += ["", "## All tests", "", "| test | vtest | s | ours | s |", "|---|---|---:|---|---:|"]
        for n in names:
            v = vt.get(n, missing)
            o = ours.get(n, missing)
            md.append(f"| {md_escape(n)} | {v[0]} | {v[1]} | {o[0]} | {o[1]} |")
        with open(args.md, "w", encoding="utf-8") as f:
            f.write("\n".join(md) + "\n")

    sys.exit(1 if failing or status_bad or reference_bad else 0)


if __name__ == "__main__":
    main()
