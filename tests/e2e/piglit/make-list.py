#!/usr/bin/env python3
"""Regenerate tests.txt, the piglit tests of piglit.sh, from the piglit inside the sid guest root.

    make-list.py [--root DIR] [--out FILE] [--stats]

Runs `piglit print-cmd` on piglit's `quick_gl` and `quick_shader` profiles inside the guest root
(tests/e2e/build-guest-root.sh --root; chroot through in-root.sh, needs root), so each command is exactly what
`piglit run` would start (binary, arguments, `-auto`, `-fbo` for the tests piglit runs concurrently), with the
binary's path made absolute. Then it picks a fixed, deterministic selection:

  * every test of REQUIRED (the issue's list: the *-formats FBO tests, texwrap formats, fbo-3d, the fbo-fast-clear
    variants, fbo-blit-stretch, vbo-subdata-many);
  * per AREA, QUOTA tests evenly spaced over the area's candidates sorted by name (so the pick spreads over the
    extensions of the area, and the same piglit gives the same list).

Left out before picking: tests of other window systems or APIs (GLX, EGL, dma-buf, external objects, SPIR-V),
window tests (no `-fbo`: piglit runs them alone; only REQUIRED ones are kept), families of HEAVY (one program
sweeps sizes or sample counts), the tests of SLOW (measured under TCG: too slow for the guest's budget) and of
FLAKY (results that change from run to run). Output lines are `name<TAB>command`, sorted by name, after a
comment header with the piglit version. Run it from anywhere; it writes tests.txt next to itself by default.
"""

import argparse
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.dirname(HERE)
PIGLIT = "/usr/lib/x86_64-linux-gnu/piglit"

# The required tests: every variant (all extensions, float/signed/... suffixes) of these.
REQUIRED = [
    r"@fbo-(clear|alphatest|generatemipmap|colormask|blending)-formats( |-|$)",
    r"@texwrap formats",
    r"@fbo-3d$",
    r"@fbo-fast-clear",
    r"@fbo-blit-stretch$",
    r"@vbo-subdata-many",
]

# (area, regex on the test name or command, quota). A test belongs to the first area that matches.
AREAS = [
    ("blit", r"blit|copy_image|copypixels|copyteximage|copytexsubimage|blitframebuffer", 50),
    ("fbo", r"@fbo|framebuffer_object@|@ext_framebuffer_multisample@|renderbuffer|@framebuffer", 70),
    ("sync", r"^spec@(arb_sync|arb_occlusion_query2?|arb_timer_query|arb_query_buffer_object|"
             r"arb_conditional_render_inverted|nv_conditional_render|!opengl 3\.0@.*conditional|"
             r"ext_timer_query|arb_sync_objects|nv_fence|apple_sync)@", 40),
    ("buffer", r"^spec@(arb_vertex_buffer_object|arb_buffer_storage|arb_copy_buffer|arb_map_buffer_range|"
               r"arb_map_buffer_alignment|arb_pixel_buffer_object|arb_uniform_buffer_object|"
               r"arb_shader_storage_buffer_object|arb_vertex_array_object|arb_draw_indirect|"
               r"arb_invalidate_subdata|arb_texture_buffer_object|arb_vertex_attrib_binding|"
               r"ext_transform_feedback|arb_draw_elements_base_vertex|arb_base_instance|"
               r"arb_clear_buffer_object|nv_primitive_restart)@", 60),
    ("texture", r"^spec@(!opengl 1\.[0-5]|!opengl 2\.[01]|arb_texture_[a-z0-9_]+|ext_texture_[a-z0-9_]+|"
                r"arb_sampler_objects|arb_clear_texture|arb_seamless_cube_map|arb_depth_texture|"
                r"arb_shadow|ext_packed_float|arb_texture_storage|arb_get_texture_sub_image|"
                r"arb_pixel_buffer_object|arb_texture_view|ext_texture_array|arb_es3_compatibility)@", 90),
    ("shader", r"/shader_runner(_gles[23])? .*/spec/(glsl-(1\.[1-5]0|3\.30|4\.[0-3]0|es-[13]\.00)|"
               r"arb_uniform_buffer_object|arb_shader_storage_buffer_object|arb_gpu_shader5|"
               r"arb_shader_bit_encoding|arb_shading_language_packing|arb_arrays_of_arrays|"
               r"arb_compute_shader|arb_explicit_attrib_location|arb_sample_shading)/", 170),
]

# Other window systems or APIs, and tests that need hardware or files the guest has not.
OUT_OF_SCOPE = re.compile(
    r"^(glx|egl|wgl|cl|vulkan|object namespace pollution)@|^spec@(egl|glx|wgl)|"
    r"ext_image_dma_buf_import|ext_external_objects|ext_memory_object|ext_semaphore|arb_gl_spirv|"
    r"mesa_.*@.*window|intel_|amd_performance_monitor|nv_.*vdpau|oes_egl_image|khr_debug|"
    r"arb_robustness|arb_shader_clock|arb_parallel_shader_compile|arb_pipeline_statistics_query")

# Families that sweep sizes, sample counts or formats in one program (left out unmeasured: a test's minutes).
HEAVY = re.compile(
    r"@(fbo-depth-array|fbo-generatemipmap-array|max-texture-size|max-samplers|texture-size|"
    r"copyteximage-border|fbo-maxsize|getteximage-targets|teximage-errors|fbo-array)|"
    r"timeout|longprim|maxsize|stress|huge")

# Measured (2026-12-05, 2 cores, 2 programs at a time): more than 9 s in the TCG guest on our device.
# texelfetch ... sampler2dmsarray 4 1x129x9-98x129x9: 68 s in the guest (18 s through vtest);
# arb_copy_image-formats --samples=N: 13 s; getteximage-formats: 9 s.
SLOW = re.compile(r"@(texelfetch .*sampler2dms|arb_copy_image-formats|getteximage-formats)")

# Results that change from run to run (measured 2026-12-05: occlusion_query_conform failed in every run through
# vtest and in all but one through our device, where it once passed): they say nothing either way.
FLAKY = re.compile(r"@occlusion_query_conform$")


def print_cmd(root, profile):
    """`piglit print-cmd` of PROFILE inside ROOT: [(name, command)] with absolute binary paths."""
    out = subprocess.run(
        [os.path.join(E2E, "in-root.sh"), root, "--", "env", "HOME=/tmp", "PIGLIT_PLATFORM=gbm",
         "piglit", "print-cmd", "--format", "{name}\t{command}", profile],
        check=True, capture_output=True, text=True).stdout
    tests = []
    for line in out.splitlines():
        if "\t" not in line:
            continue
        name, cmd = line.split("\t", 1)
        argv = cmd.split()
        # print-cmd writes the binary relative to /usr/bin (where the piglit script is).
        argv[0] = os.path.normpath(os.path.join("/usr/bin", argv[0]))
        tests.append((name, " ".join(argv)))
    return tests


def piglit_version(root):
    out = subprocess.run(["chroot", root, "dpkg-query", "-W", "-f=${Version}", "piglit"],
                         check=True, capture_output=True, text=True).stdout
    return out.strip()


def evenly(items, n):
    """N items evenly spaced over ITEMS (all when there are not more)."""
    if len(items) <= n:
        return list(items)
    return [items[int((k + 0.5) * len(items) / n)] for k in range(n)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--root", help="the guest root (default: build-guest-root.sh --root)")
    ap.add_argument("--out", default=os.path.join(HERE, "tests.txt"))
    ap.add_argument("--stats", action="store_true", help="print the count per area")
    args = ap.parse_args()
    root = args.root or subprocess.run([os.path.join(E2E, "build-guest-root.sh"), "--root"],
                                       check=True, capture_output=True, text=True).stdout.strip()
    if not os.path.isdir(os.path.join(root, PIGLIT.lstrip("/"))):
        sys.exit(f"make-list: no piglit in {root}")

    tests = print_cmd(root, "quick_gl") + print_cmd(root, "quick_shader")
    names = [n for n, _ in tests]
    if len(set(names)) != len(names):
        sys.exit("make-list: duplicate test names in piglit's profiles")
    required = re.compile("|".join(REQUIRED))
    areas = [(a, re.compile(r), q) for a, r, q in AREAS]
    chosen = {}
    candidates = {a: [] for a, _, _ in AREAS}
    for name, cmd in sorted(tests):
        if any(c in name for c in "\t\n") or "'" in cmd or '"' in cmd:
            continue
        if required.search(name) and not OUT_OF_SCOPE.search(name):
            chosen[name] = (cmd, "required")
            continue
        if OUT_OF_SCOPE.search(name) or HEAVY.search(name) or SLOW.search(name) or FLAKY.search(name) or " -fbo" not in cmd:
            continue
        for area, rx, _ in areas:
            if rx.search(name) or rx.search(cmd):
                candidates[area].append((name, cmd))
                break
    for area, _, quota in areas:
        for name, cmd in evenly(candidates[area], quota):
            chosen[name] = (cmd, area)

    with open(args.out, "w", encoding="utf-8") as f:
        f.write("# piglit tests of tests/e2e/piglit.sh: `name<TAB>command`, the command as `piglit run` starts it.\n")
        f.write(f"# Generated by tests/e2e/piglit/make-list.py from piglit {piglit_version(root)} (profiles\n")
        f.write("# quick_gl and quick_shader); edit make-list.py and rerun it rather than this file.\n")
        for name in sorted(chosen):
            f.write(f"{name}\t{chosen[name][0]}\n")
    if args.stats:
        counts = {}
        for _, area in chosen.values():
            counts[area] = counts.get(area, 0) + 1
        for area in ["required"] + [a for a, _, _ in AREAS]:
            print(f"{area:9} {counts.get(area, 0):4} (of {len(candidates.get(area, [])) or '-'} candidates)")
        print(f"{'total':9} {len(chosen):4} -> {args.out}")


if __name__ == "__main__":
    main()
