#include "gpu/state_format.h"

#include <fmt/format.h>
#include <zlib.h>

#include <cstring>
#include <limits>

namespace vgpu {

namespace {

constexpr std::array<char, 8> kMagic = {'V', 'G', 'P', 'U', 'S', 'T', 'A', 'T'};
constexpr size_t kHeaderSize = 8 + 4 + 4 + 8 + 4 + 4;

uint32_t crc_of(std::span<const std::byte> body) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib takes uInt lengths: feed it in pieces.
  for (size_t done = 0; done < body.size();) {
    const size_t n = std::min<size_t>(body.size() - done, std::numeric_limits<uInt>::max());
    crc = crc32(crc, reinterpret_cast<const Bytef*>(body.data() + done), static_cast<uInt>(n));
    done += n;
  }
  return static_cast<uint32_t>(crc);
}

class Writer {
 public:
  // Fixed-size fields in order, each as its host (little-endian) bytes.
  template <class... T>
  void fields(const T&... v) {
    (put(&v, sizeof(v)), ...);
  }
  void u8(uint8_t v) { fields(v); }
  void u32(uint32_t v) { fields(v); }
  void u64(uint64_t v) { fields(v); }
  void bytes(std::span<const std::byte> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  std::vector<std::byte>& out() { return out_; }

 private:
  void put(const void* p, size_t n) {
    const auto* b = static_cast<const std::byte*>(p);
    out_.insert(out_.end(), b, b + n);
  }
  std::vector<std::byte> out_;
};

// Every read checks what is left first; the first failure sticks (later reads return zeros), so a decoder
// reads a whole record and checks ok() once.
class Reader {
 public:
  explicit Reader(std::span<const std::byte> in) : in_(in) {}
  // Fixed-size fields in order: the Writer's counterpart.
  template <class... T>
  void fields(T&... v) {
    (get(&v, sizeof(v)), ...);
  }
  template <class T>
  T value() {
    T v{};
    fields(v);
    return v;
  }
  uint8_t u8() { return value<uint8_t>(); }
  uint32_t u32() { return value<uint32_t>(); }
  uint64_t u64() { return value<uint64_t>(); }
  // `n` bytes, or an empty span (and the reader failed) when fewer are left.
  std::span<const std::byte> bytes(uint64_t n) {
    if (!ok_ || n > in_.size() - pos_) {
      ok_ = false;
      return {};
    }
    auto s = in_.subspan(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }
  [[nodiscard]] bool ok() const { return ok_; }
  [[nodiscard]] size_t left() const { return in_.size() - pos_; }

 private:
  void get(void* p, size_t n) {
    if (!ok_ || n > in_.size() - pos_) {
      ok_ = false;
      std::memset(p, 0, n);
      return;
    }
    std::memcpy(p, in_.data() + pos_, n);
    pos_ += n;
  }
  std::span<const std::byte> in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

Unexpected<std::string> bad(const std::string& why) {
  return fail(why);
}

// The fixed-size fields of each record, in wire order (the layout in state_format.h). encode_state calls these
// with a Writer and const records, decode_state with a Reader, so each layout is written once. Flags and
// counts, which decode checks as it goes, stay in the two functions.
template <class Io, class R>
void rect_fields(Io& io, R& r) {
  io.fields(r.x, r.y, r.width, r.height);
}
template <class Io, class R>
void resource_fields(Io& io, R& r) {
  io.fields(r.id, r.format, r.width, r.height, r.blob_mem, r.blob_flags, r.blob_size);
}
template <class Io, class E>
void backing_entry_fields(Io& io, E& e) {
  uint32_t padding = 0;
  io.fields(e.addr, e.length, padding);
}
template <class Io, class B>
void blob_layout_fields(Io& io, B& b) {
  io.fields(b.format, b.width, b.height, b.stride, b.offset);
}
template <class Io, class C>
void cursor_fields(Io& io, C& c) {  // after its u8 visible flag
  io.fields(c.resource_id, c.hot_x, c.hot_y, c.x, c.y);
}

}  // namespace

std::vector<std::byte> encode_state(const DeviceState& state) {
  Writer body;
  body.u32(state.num_scanouts);
  body.u32(static_cast<uint32_t>(state.resources.size()));
  for (const SavedResource& r : state.resources) {
    resource_fields(body, r);
    body.u8(r.uuid ? 1 : 0);
    const std::array<uint8_t, 16> uuid = r.uuid.value_or(std::array<uint8_t, 16>{});
    body.bytes(std::as_bytes(std::span(uuid)));
    body.u8(r.backing ? 1 : 0);
    const size_t entries = r.backing ? r.backing->size() : 0;
    body.u32(static_cast<uint32_t>(entries));
    for (size_t i = 0; i < entries; ++i) backing_entry_fields(body, (*r.backing)[i]);
    body.u64(r.pixels.size());
    body.bytes(r.pixels);
  }
  body.u32(static_cast<uint32_t>(state.scanouts.size()));
  for (const SavedScanout& s : state.scanouts) {
    body.u32(s.resource_id);
    rect_fields(body, s.rect);
    body.u8(s.blob ? 1 : 0);
    const SavedBlobLayout b = s.blob.value_or(SavedBlobLayout{});
    blob_layout_fields(body, b);
  }
  body.u32(static_cast<uint32_t>(state.cursors.size()));
  for (const CursorState& c : state.cursors) {
    body.u8(c.visible ? 1 : 0);
    cursor_fields(body, c);
  }
  body.u8(state.layout ? 1 : 0);
  const size_t modes = state.layout ? state.layout->size() : 0;
  body.u32(static_cast<uint32_t>(modes));
  for (size_t i = 0; i < modes; ++i) {
    body.u8((*state.layout)[i].enabled ? 1 : 0);
    rect_fields(body, (*state.layout)[i].rect);
  }

  Writer all;
  all.bytes(std::as_bytes(std::span(kMagic)));
  all.u32(kStateVersion);
  all.u32(0);
  all.u64(body.out().size());
  all.u32(crc_of(body.out()));
  all.u32(0);
  all.bytes(body.out());
  return std::move(all.out());
}

Result<DeviceState, std::string> decode_state(std::span<const std::byte> bytes) {
  if (bytes.size() < kHeaderSize)
    return bad(fmt::format("truncated: {} bytes, a header is {}", bytes.size(), kHeaderSize));
  Reader head(bytes.first(kHeaderSize));
  const auto magic = head.bytes(kMagic.size());
  if (std::memcmp(magic.data(), kMagic.data(), kMagic.size()) != 0) return bad("not a vhost-gpu device state (magic)");
  const uint32_t version = head.u32();
  if (version != kStateVersion) {
    return bad(fmt::format("saved by format version {}; this build reads version {} only", version, kStateVersion));
  }
  if (const uint32_t flags = head.u32(); flags != 0) return bad(fmt::format("unknown flags 0x{:x}", flags));
  const uint64_t body_len = head.u64();
  const uint32_t crc = head.u32();
  (void)head.u32();
  const auto body = bytes.subspan(kHeaderSize);
  if (body_len != body.size()) {
    return bad(fmt::format("length mismatch: the header says {} body bytes, {} came (truncated or extended)", body_len,
                           body.size()));
  }
  if (crc_of(body) != crc) return bad("checksum mismatch: the state is corrupted");

  // The checksum matched, but the writer may have been hostile: every count and size is still checked.
  Reader in(body);
  DeviceState st;
  st.num_scanouts = in.u32();
  if (st.num_scanouts == 0 || st.num_scanouts > kMaxSavedScanouts) {
    return bad(fmt::format("{} scanouts (1 to {})", st.num_scanouts, kMaxSavedScanouts));
  }
  const uint32_t nres = in.u32();
  if (nres > kMaxSavedResources) return bad(fmt::format("{} resources (at most {})", nres, kMaxSavedResources));
  uint64_t entries_total = 0;
  for (uint32_t i = 0; i < nres && in.ok(); ++i) {
    SavedResource r;
    resource_fields(in, r);
    const uint8_t has_uuid = in.u8();
    std::array<uint8_t, 16> uuid{};
    const auto uuid_bytes = in.bytes(uuid.size());
    if (in.ok()) std::memcpy(uuid.data(), uuid_bytes.data(), uuid.size());
    if (has_uuid > 1) return bad(fmt::format("resource {}: bad UUID flag", r.id));
    if (has_uuid == 1) r.uuid = uuid;
    const uint8_t has_backing = in.u8();
    const uint32_t nentries = in.u32();
    if (has_backing > 1 || (has_backing == 0 && nentries != 0))
      return bad(fmt::format("resource {}: bad backing", r.id));
    entries_total += nentries;
    if (entries_total > kMaxSavedBackingEntries) return bad("too many backing entries");
    // 16 bytes per entry must be there before anything is reserved for them.
    if (uint64_t{nentries} * 16 > in.left()) return bad(fmt::format("truncated in resource {}'s backing", r.id));
    if (has_backing == 1) {
      r.backing.emplace();
      r.backing->reserve(nentries);
      for (uint32_t e = 0; e < nentries; ++e) {
        SavedBackingEntry entry;
        backing_entry_fields(in, entry);
        r.backing->push_back(entry);
      }
    }
    const uint64_t npixels = in.u64();
    const auto pixels = in.bytes(npixels);
    if (!in.ok()) return bad(fmt::format("truncated in resource {}", r.id));
    r.pixels.assign(pixels.begin(), pixels.end());
    st.resources.push_back(std::move(r));
  }
  const uint32_t nscan = in.u32();
  if (in.ok() && nscan != st.num_scanouts) return bad(fmt::format("{} scanouts saved for {}", nscan, st.num_scanouts));
  for (uint32_t i = 0; i < nscan && in.ok(); ++i) {
    SavedScanout s;
    s.resource_id = in.u32();
    rect_fields(in, s.rect);
    const uint8_t is_blob = in.u8();
    SavedBlobLayout b;
    blob_layout_fields(in, b);
    if (is_blob > 1) return bad(fmt::format("scanout {}: bad blob flag", i));
    if (is_blob == 1) s.blob = b;
    st.scanouts.push_back(s);
  }
  const uint32_t ncur = in.u32();
  if (in.ok() && ncur != st.num_scanouts)
    return bad(fmt::format("{} cursors saved for {} scanouts", ncur, st.num_scanouts));
  for (uint32_t i = 0; i < ncur && in.ok(); ++i) {
    CursorState c;
    const uint8_t visible = in.u8();
    cursor_fields(in, c);
    if (visible > 1) return bad(fmt::format("cursor {}: bad flag", i));
    c.visible = visible == 1;
    st.cursors.push_back(c);
  }
  const uint8_t has_layout = in.u8();
  const uint32_t nmodes = in.u32();
  if (in.ok() && (has_layout > 1 || nmodes > kMaxSavedScanouts || (has_layout == 0 && nmodes != 0))) {
    return bad("bad display layout");
  }
  if (has_layout == 1) st.layout.emplace();
  for (uint32_t i = 0; i < nmodes && in.ok(); ++i) {
    SavedMode m;
    const uint8_t enabled = in.u8();
    rect_fields(in, m.rect);
    if (enabled > 1) return bad("bad display layout");
    m.enabled = enabled == 1;
    st.layout->push_back(m);
  }
  if (!in.ok()) return bad("truncated body");
  if (in.left() != 0) return bad(fmt::format("{} bytes after the state", in.left()));
  return st;
}

}  // namespace vgpu
