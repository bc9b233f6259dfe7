// Which file offset a pointer in this process maps, read from /proc/self/maps. Used for Vulkan memory that a
// library exports as a memfd with a header in front of the data (lavapipe without udmabuf): the library maps
// the data for us, and the mapping's line says where in the file it starts.
//
//   auto off = file_offset_of(read_proc_maps(), reinterpret_cast<uintptr_t>(ptr), st.st_dev, st.st_ino);
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vgpu {

// The offset in the file with device `dev` and inode `inode` that `address` maps, from the text of a
// /proc/<pid>/maps file ("start-end perms offset major:minor inode path" per line, hexadecimal but the inode).
// nullopt when no line covers `address`, the line names another file, or a line covering it is malformed.
std::optional<uint64_t> file_offset_of(std::string_view maps, uintptr_t address, dev_t dev, ino_t inode);

// The whole of /proc/self/maps (empty when it cannot be read).
std::string read_proc_maps();

}  // namespace vgpu
