// The root catalog: a linked list of catalog pages mapping names to
// structures. One walk serves the writer (through its transaction) and
// readers (through a read_view).
#include <cstring>

#include "alloc/allocator.h"
#include "store/store_impl.h"

namespace keel {

namespace {

using fmt::catalog_slot;
using fmt::kCatalogEntries;
using fmt::kCatalogEntry;
using fmt::kCatalogHeader;
using fmt::kPage;

void check_name(std::string_view name, const std::string& path) {
  if (name.empty() || name.size() > fmt::kMaxName)
    throw error(errc::invalid_argument, path,
                "catalog names are 1.." + std::to_string(fmt::kMaxName) + " bytes, got " + std::to_string(name.size()));
}

type_desc decode(const fmt::type_bytes& t) { return {t.code, t.align, t.size, t.fp}; }
fmt::type_bytes encode(const type_desc& t) { return {t.code, t.align, t.size, t.fp}; }

// Walks every slot of every catalog page. get(off, len) returns readable
// bytes; visit(slot_offset, slot) returns true to stop.
template <class Get, class Visit>
void walk(Get&& get, std::uint64_t head, std::uint64_t limit, const std::string& path, Visit&& visit) {
  const std::uint64_t max_pages = limit / kPage + 1;
  std::uint64_t page = head;
  for (std::uint64_t n = 0; page != 0; ++n) {
    if (n >= max_pages || page % kPage != 0 || page < fmt::kArenaOffset || page >= limit)
      throw error(errc::corrupt, path, "catalog page link " + std::to_string(page) + " is invalid");
    const std::byte* p = get(page, kPage);
    if (std::memcmp(p, fmt::kCatalogMagic, 8) != 0)
      throw error(errc::corrupt, path, "catalog page at " + std::to_string(page) + " has no catalog magic");
    for (std::size_t i = 0; i < kCatalogEntries; ++i) {
      catalog_slot s;
      std::memcpy(&s, p + kCatalogHeader + i * kCatalogEntry, sizeof s);
      if (visit(page + kCatalogHeader + i * kCatalogEntry, s)) return;
    }
    std::memcpy(&page, p + 8, 8);
  }
}

catalog_entry to_entry(const catalog_slot& s, std::uint64_t at, const std::string& path) {
  if (s.name_len == 0 || s.name_len > fmt::kMaxName || s.kind < 1 || s.kind > 5)
    throw error(errc::corrupt, path, "catalog entry at " + std::to_string(at) + " is malformed");
  return {std::string(s.name, s.name_len), static_cast<kind>(s.kind), decode(s.key), decode(s.value), s.root, s.aux};
}

bool same_name(const catalog_slot& s, std::string_view name) {
  return s.in_use == 1 && s.name_len == name.size() && std::memcmp(s.name, name.data(), name.size()) == 0;
}

template <class Get>
std::optional<std::pair<catalog_entry, std::uint64_t>> find_slot(Get&& get, std::uint64_t head, std::uint64_t limit,
                                                                  const std::string& path, std::string_view name) {
  std::optional<std::pair<catalog_entry, std::uint64_t>> found;
  walk(get, head, limit, path, [&](std::uint64_t at, const catalog_slot& s) {
    if (!same_name(s, name)) return false;
    found.emplace(to_entry(s, at, path), at);
    return true;
  });
  return found;
}

template <class Get>
std::vector<catalog_entry> list_all(Get&& get, std::uint64_t head, std::uint64_t limit, const std::string& path) {
  std::vector<catalog_entry> out;
  walk(get, head, limit, path, [&](std::uint64_t at, const catalog_slot& s) {
    if (s.in_use == 1) out.push_back(to_entry(s, at, path));
    return false;
  });
  return out;
}

auto txn_reader(write_txn::impl& t) {
  return [&t](std::uint64_t off, std::size_t len) { return t.ro(off, len); };
}

}  // namespace

std::string kind_name(kind k) {
  switch (k) {
    case kind::raw: return "raw";
    case kind::hash_map: return "hash_map";
    case kind::bytes_hash_map: return "bytes_map";
    case kind::tree_map: return "tree_map";
    case kind::bytes_tree_map: return "bytes_tree";
  }
  return "kind" + std::to_string(static_cast<int>(k));
}

void check_type(const catalog_entry& e, const std::string& path, kind k, type_desc key, type_desc value) {
  if (e.kind == k && e.key == key && e.value == value) return;
  throw error(errc::type_mismatch, path,
              "'" + e.name + "' holds " + kind_name(e.kind) + "<" + e.key.describe() + ", " + e.value.describe() +
                  ">, opened as " + kind_name(k) + "<" + key.describe() + ", " + value.describe() + ">");
}

std::optional<catalog_entry> write_txn::find(std::string_view name) {
  auto& t = live_txn(p_);
  check_name(name, t.s.path);
  auto r = find_slot(txn_reader(t), t.get64(KEEL_META(catalog_head)), t.cursor, t.s.path, name);
  if (!r) return std::nullopt;
  return r->first;
}

std::vector<catalog_entry> write_txn::list() {
  auto& t = live_txn(p_);
  return list_all(txn_reader(t), t.get64(KEEL_META(catalog_head)), t.cursor, t.s.path);
}

catalog_entry write_txn::open_root(std::string_view name, kind k, type_desc key, type_desc value) {
  auto& t = live_txn(p_);
  check_name(name, t.s.path);
  const std::uint64_t head = t.get64(KEEL_META(catalog_head));
  if (auto r = find_slot(txn_reader(t), head, t.cursor, t.s.path, name)) {
    const catalog_entry& e = r->first;
    check_type(e, t.s.path, k, key, value);
    return e;
  }
  std::uint64_t free_at = 0;
  walk(txn_reader(t), head, t.cursor, t.s.path, [&](std::uint64_t at, const catalog_slot& s) {
    if (s.in_use != 0) return false;
    free_at = at;
    return true;
  });
  if (free_at == 0) {
    const std::uint64_t page = allocator::allocate(t, kPage);
    std::byte* p = t.rw(page, kPage);
    std::memset(p, 0, kPage);
    std::memcpy(p, fmt::kCatalogMagic, 8);
    std::memcpy(p + 8, &head, 8);
    t.set64(KEEL_META(catalog_head), page);
    free_at = page + kCatalogHeader;
  }
  catalog_slot s{};
  s.in_use = 1;
  s.name_len = static_cast<std::uint8_t>(name.size());
  s.kind = static_cast<std::uint16_t>(k);
  s.key = encode(key);
  s.value = encode(value);
  std::memcpy(s.name, name.data(), name.size());
  std::memcpy(t.rw(free_at, sizeof s), &s, sizeof s);
  return {std::string(name), k, key, value, 0, 0};
}

void write_txn::set_root(std::string_view name, std::uint64_t root, std::uint64_t aux) {
  auto& t = live_txn(p_);
  check_name(name, t.s.path);
  auto r = find_slot(txn_reader(t), t.get64(KEEL_META(catalog_head)), t.cursor, t.s.path, name);
  if (!r) throw error(errc::invalid_argument, t.s.path, "no catalog entry named '" + std::string(name) + "'");
  t.set64(r->second + offsetof(catalog_slot, root), root);
  t.set64(r->second + offsetof(catalog_slot, aux), aux);
}

bool write_txn::drop(std::string_view name) {
  auto& t = live_txn(p_);
  check_name(name, t.s.path);
  auto r = find_slot(txn_reader(t), t.get64(KEEL_META(catalog_head)), t.cursor, t.s.path, name);
  if (!r) return false;
  std::memset(t.rw(r->second, kCatalogEntry), 0, kCatalogEntry);
  return true;
}

std::optional<catalog_entry> read_view::find(std::string_view name) const {
  check_name(name, *path_);
  std::uint64_t head;
  std::memcpy(&head, base_ + KEEL_META(catalog_head), 8);
  auto get = [this](std::uint64_t off, std::size_t len) { return bytes(off, len); };
  auto r = find_slot(get, head, hi_, *path_, name);
  if (!r) return std::nullopt;
  return r->first;
}

std::vector<catalog_entry> read_view::list() const {
  std::uint64_t head;
  std::memcpy(&head, base_ + KEEL_META(catalog_head), 8);
  auto get = [this](std::uint64_t off, std::size_t len) { return bytes(off, len); };
  return list_all(get, head, hi_, *path_);
}

void read_view::bad_range(std::uint64_t off, std::size_t len) const {
  throw error(errc::corrupt, path_ ? *path_ : std::string(),
              "offset " + std::to_string(off) + " (+" + std::to_string(len) + ") is outside the arena [" +
                  std::to_string(lo_) + ", " + std::to_string(hi_) + ")");
}

}  // namespace keel
