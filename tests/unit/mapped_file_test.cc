// file_offset_of: which file offset an address maps, from /proc/<pid>/maps text; and against this process's
// own mapping of a memfd at an offset.
#include "renderer/mapped_file.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/unique_fd.h"

namespace vgpu {
namespace {

constexpr std::string_view kMaps =
    "55d0c0000000-55d0c0021000 r--p 00000000 fe:01 1234                       /usr/bin/x\n"
    "7f0000000000-7f0000004000 rw-s 00002000 00:01 5678                       /memfd:lvp (deleted)\n"
    "7f0000010000-7f0000011000 rw-p 00000000 00:00 0 \n"
    "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]\n";

TEST(MappedFile, AddressInsideTheFilesMapping_FileOffsetPlusDelta) {
  EXPECT_EQ(file_offset_of(kMaps, 0x7f0000000000, makedev(0, 1), 5678), 0x2000u);
  EXPECT_EQ(file_offset_of(kMaps, 0x7f0000001010, makedev(0, 1), 5678), 0x3010u);
}

TEST(MappedFile, AnotherFileOrNoMapping_Nullopt) {
  EXPECT_EQ(file_offset_of(kMaps, 0x7f0000000000, makedev(0, 1), 9999), std::nullopt);  // other inode
  EXPECT_EQ(file_offset_of(kMaps, 0x7f0000000000, makedev(0, 2), 5678), std::nullopt);  // other device
  EXPECT_EQ(file_offset_of(kMaps, 0x7f0000004000, makedev(0, 1), 5678), std::nullopt);  // one past the end
  EXPECT_EQ(file_offset_of(kMaps, 0x7f0000010000, makedev(0, 0), 0), 0u);               // anonymous: inode 0
  EXPECT_EQ(file_offset_of(kMaps, 0x1000, makedev(0, 1), 5678), std::nullopt);
}

TEST(MappedFile, MalformedText_NulloptNeverACrash) {
  for (std::string_view text :
       {"", "\n\n", "zzzz", "7f0000000000-", "7f0000000000-7f0000004000", "7f0000000000-7f0000004000 rw-s",
        "7f0000000000-7f0000004000 rw-s 2000 00:01", "7f0000000000-7f0000004000 rw-s ffffffffffffffff 00:01 5678 x",
        "7f0000000000-7f0000004000 rw-s 2000 0001 5678"}) {
    EXPECT_EQ(file_offset_of(text, 0x7f0000001000, makedev(0, 1), 5678), std::nullopt) << text;
  }
}

TEST(MappedFile, ThisProcess_MemfdMappedAtAnOffset_Found) {
  const auto page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  UniqueFd fd(::memfd_create("mapped-file-test", MFD_CLOEXEC));
  ASSERT_TRUE(fd);
  ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(4 * page)), 0);
  void* p = ::mmap(nullptr, 2 * page, PROT_READ, MAP_SHARED, fd.get(), static_cast<off_t>(page));
  ASSERT_NE(p, MAP_FAILED);
  struct stat st {};
  ASSERT_EQ(::fstat(fd.get(), &st), 0);
  const auto at = reinterpret_cast<uintptr_t>(p);
  EXPECT_EQ(file_offset_of(read_proc_maps(), at, st.st_dev, st.st_ino), page);
  EXPECT_EQ(file_offset_of(read_proc_maps(), at + 100, st.st_dev, st.st_ino), page + 100);
  ::munmap(p, 2 * page);
}

}  // namespace
}  // namespace vgpu
