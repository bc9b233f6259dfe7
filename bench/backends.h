// Backend discovery for vgpu_bench: the binaries it can drive (ours, a baseline build of ours, QEMU 10.0's and
// 7.2's vhost-user-gpu), their versions (--version, dpkg-query, the fetch script's VERSION file in its cache)
// and why one is skipped; and the small file and command helpers that needs.
#pragma once

#include <string>
#include <vector>

namespace vgpu::bench {

// One backend of the table: how to start it, and whether it can be.
struct BackendSpec {
  std::string name;
  std::string path;
  std::string version;
  std::vector<std::string> args;  // before the socket path
  std::string unavailable;        // why it is skipped; empty when usable
};

// The first line of the file at `path`; empty when it cannot be read.
std::string read_first_line(const std::string& path);

// The standard output of the shell command `cmd`, without trailing newlines and spaces.
std::string run_command(const std::string& cmd);

// Our binary at `path` (or a wrapper that execs it), with what its --version prints.
BackendSpec ours_spec(const std::string& path);

// Another build of ours (e.g. before a change), run interleaved with the others so that a before/after
// comparison sees the same load: its column gives an ours/baseline ratio.
BackendSpec baseline_spec(const std::string& path);

// QEMU 10.0's vhost-user-gpu at `path`, when it is installed from Debian's qemu-system-gui 10.0.
BackendSpec qemu10_spec(const std::string& path);

// QEMU 7.2's vhost-user-gpu at `path`, by default where bench/fetch-qemu72-backend.sh unpacked it.
BackendSpec qemu72_spec(std::string path);

}  // namespace vgpu::bench
