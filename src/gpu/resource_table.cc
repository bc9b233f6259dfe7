#include "gpu/resource_table.h"

namespace vgpu {

Resource* ResourceTable::find(uint32_t id) {
  auto it = resources_.find(id);
  return it == resources_.end() ? nullptr : &it->second;
}

const Resource* ResourceTable::find(uint32_t id) const {
  auto it = resources_.find(id);
  return it == resources_.end() ? nullptr : &it->second;
}

bool ResourceTable::uuid_in_use(const ObjectUuid& uuid) const {
  for (const auto& [id, r] : resources_) {
    if (r.uuid == uuid) return true;
  }
  return false;
}

const Resource* ResourceTable::find_by_uuid(const ObjectUuid& uuid) const {
  for (const auto& [id, r] : resources_) {
    if (r.uuid == uuid) return &r;
  }
  return nullptr;
}

bool ResourceTable::reserve(uint64_t bytes) {
  // Compare against what is left instead of summing: used_bytes_ + bytes could wrap.
  if (bytes > max_host_bytes_ - used_bytes_) return false;
  used_bytes_ += bytes;
  return true;
}

void ResourceTable::insert(uint32_t id, Resource resource) {
  resources_.insert_or_assign(id, std::move(resource));
}

void ResourceTable::erase(uint32_t id) {
  auto it = resources_.find(id);
  if (it == resources_.end()) return;
  used_bytes_ -= it->second.host_bytes;
  resources_.erase(it);
}

void ResourceTable::clear() {
  resources_.clear();
  used_bytes_ = 0;
}

}  // namespace vgpu
