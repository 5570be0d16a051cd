// The data file's transactional part: meta page, free lists, catalog, every
// structure the catalog names, then one pass over all blocks found: no two
// overlap, and the allocator's accounting adds up.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "alloc/allocator.h"
#include "check/check_internal.h"

namespace keel::checker {

using fmt::kPage;

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
  return buf;
}

namespace {

std::string num(std::uint64_t v) { return std::to_string(v); }
std::string span(std::uint64_t off, std::uint64_t len) { return "[" + num(off) + ", +" + num(len) + ")"; }
std::string signed_diff(std::uint64_t a, std::uint64_t b) {
  return a >= b ? "+" + num(a - b) : "-" + num(b - a);
}

constexpr std::uint64_t meta_at(std::size_t field) { return fmt::kMetaOffset + field; }

const char* kind_name(std::uint16_t k) {
  switch (k) {
    case 1: return "raw";
    case 2: return "hash_map";
    case 3: return "bytes_map";
    case 4: return "tree_map";
    case 5: return "bytes_tree";
  }
  return "?";
}

// Why a stored type descriptor is malformed, or empty.
std::string type_problem(const fmt::type_bytes& t) {
  auto sized = [&](std::uint32_t size) -> std::string {
    if (t.size != size || t.align != size || t.fp != 0)
      return "code " + num(t.code) + " needs size and alignment " + num(size) + " and no fingerprint";
    return {};
  };
  switch (t.code) {
    case 0: return t.align == 0 && t.size == 0 && t.fp == 0 ? "" : "type 'none' with a size";
    case 1: case 2: case 3: case 4: return sized(1u << (t.code - 1));
    case 5: case 6: case 7: case 8: return sized(1u << (t.code - 5));
    case 9: return sized(4);
    case 10: return sized(8);
    case 11: return t.align == 1 && t.size == 0 && t.fp == 0 ? "" : "byte-string type with a size";
    case 12:
      if (t.size == 0 || t.align == 0 || !std::has_single_bit(t.align) || t.size % t.align != 0)
        return "fixed type of size " + num(t.size) + " and alignment " + num(t.align);
      return {};
  }
  return "unknown type code " + num(t.code);
}

bool is_bytes(const fmt::type_bytes& t) { return t.code == 11; }

void check_meta(context& c, const fmt::superblock& sb, fmt::meta_page& m) {
  const std::uint64_t img_end = c.img.size & ~(kPage - 1);
  c.limit = std::max<std::uint64_t>(img_end, fmt::kArenaOffset);
  if (!c.img.get(fmt::kMetaOffset, m)) {
    c.problem("meta page", fmt::kMetaOffset, "missing: the file is " + num(c.img.size) + " bytes");
    m = {};
    return;
  }
  if (std::memcmp(m.magic, fmt::kMetaMagic, 8) != 0)
    c.problem("meta page", fmt::kMetaOffset, "no KEELMETA magic");
  if (m.cursor < fmt::kArenaOffset || m.cursor > img_end) {
    c.problem("meta page", meta_at(offsetof(fmt::meta_page, cursor)),
              "cursor " + num(m.cursor) + " is outside the arena [" + num(fmt::kArenaOffset) + ", " + num(img_end) +
                  "] of the " + num(c.img.size) + "-byte file");
  } else {
    c.cursor_ok = true;
    c.limit = m.cursor;
    if (m.cursor < sb.cursor)
      c.problem("meta page", meta_at(offsetof(fmt::meta_page, cursor)),
                "cursor " + num(m.cursor) + " is behind the checkpoint's " + num(sb.cursor) + " (it never moves back)");
  }
  if (m.catalog_head != 0 && (m.catalog_head < fmt::kArenaOffset || m.catalog_head >= c.limit))
    c.problem("meta page", meta_at(offsetof(fmt::meta_page, catalog_head)),
              "catalog head " + num(m.catalog_head) + " is outside the arena");
  if (c.cursor_ok && m.live_bytes + m.free_bytes != m.cursor - fmt::kArenaOffset)
    c.problem("allocator", meta_at(offsetof(fmt::meta_page, live_bytes)),
              "live bytes " + num(m.live_bytes) + " + free bytes " + num(m.free_bytes) + " = " +
                  num(m.live_bytes + m.free_bytes) + ", but the arena holds " + num(m.cursor - fmt::kArenaOffset) +
                  " bytes up to the cursor (off by " + signed_diff(m.live_bytes + m.free_bytes, m.cursor - fmt::kArenaOffset) +
                  ")");
  if (m.commits < sb.checkpoint_lsn)
    c.problem("meta page", meta_at(offsetof(fmt::meta_page, commits)),
              "records " + num(m.commits) + " commits, behind the checkpoint LSN " + num(sb.checkpoint_lsn));
}

void check_free_lists(context& c, const fmt::meta_page& m) {
  std::unordered_map<std::uint64_t, int> seen;  // free block -> its class
  std::uint64_t blocks = 0;
  for (int cls = 0; cls < fmt::kClasses; ++cls) {
    const std::uint64_t bytes = allocator::class_bytes(cls);
    std::uint64_t link_at = meta_at(offsetof(fmt::meta_page, free_head) + 8 * static_cast<std::size_t>(cls));
    std::uint64_t off = m.free_head[cls];
    if (off == 0) continue;
    const std::uint32_t who = c.owner("free list of class " + num(cls) + " (" + num(bytes) + " bytes)");
    const std::string list = "free list of class " + num(cls) + " (" + num(bytes) + "-byte blocks)";
    while (off != 0) {
      if (!c.block_ok(off, bytes)) {
        c.problem("allocator", link_at,
                  list + ": link to " + num(off) + " is outside the arena or not placed like a block of the class");
        break;
      }
      const auto [it, fresh] = seen.emplace(off, cls);
      if (!fresh) {
        c.problem("allocator", link_at,
                  it->second == cls ? list + ": cycle: the link at " + num(link_at) + " leads back to block " + num(off)
                                    : "block " + num(off) + " is on the free lists of classes " + num(it->second) +
                                          " and " + num(cls));
        break;
      }
      c.add_block(off, bytes, who, true);
      c.free_found += bytes;
      ++blocks;
      link_at = off;
      c.img.get(off, off);  // inside the image: block_ok bounds it by the cursor
    }
  }
  // Limbo: freed blocks count as free (not on a list until a checkpoint
  // covers their freeing commit); pinned ones belong to their structure,
  // which reports them.
  if (m.limbo_count > static_cast<std::uint64_t>(fmt::kLimbo)) {
    c.problem("allocator", meta_at(offsetof(fmt::meta_page, limbo_count)),
              "limbo holds " + num(m.limbo_count) + " entries, more than " + num(fmt::kLimbo));
  } else {
    const std::uint32_t who = c.owner("limbo (freed blocks awaiting a checkpoint)");
    for (std::uint64_t i = 0; i < m.limbo_count; ++i) {
      const fmt::limbo_entry& e = m.limbo[i];
      const std::uint64_t at = meta_at(offsetof(fmt::meta_page, limbo) + i * sizeof(fmt::limbo_entry));
      if (e.bytes == 0 || allocator::class_bytes(allocator::class_of(e.bytes)) != e.bytes || !c.block_ok(e.off, e.bytes)) {
        c.problem("allocator", at,
                  "limbo entry " + num(i) + ": " + num(e.bytes) + " bytes at " + num(e.off) +
                      " is not a block of a size class inside the arena");
        continue;
      }
      for (std::uint64_t j = 0; j < i; ++j)
        if (m.limbo[j].off == e.off) c.problem("allocator", at, "limbo entries " + num(j) + " and " + num(i) + " are the same block");
      if (e.free_lsn == fmt::kPinned) continue;
      if (e.free_lsn > m.commits)
        c.problem("allocator", at,
                  "limbo entry " + num(i) + " was freed at LSN " + num(e.free_lsn) + ", after the last commit " +
                      num(m.commits));
      c.add_block(e.off, e.bytes, who, true);
      c.free_found += e.bytes;
    }
  }
  if (c.free_found != m.free_bytes)
    c.problem("allocator", meta_at(offsetof(fmt::meta_page, free_bytes)),
              "free bytes says " + num(m.free_bytes) + ", the free lists and limbo hold " + num(c.free_found) +
                  " (off by " + signed_diff(m.free_bytes, c.free_found) + ")");
  c.advance(blocks * 8);
}

void check_entry(context& c, std::uint64_t at, const fmt::catalog_slot& s, std::set<std::string>& names) {
  if (s.in_use != 1) {
    c.problem("catalog", at, "entry's in-use byte is " + num(s.in_use) + " (0 or 1)");
    return;
  }
  if (s.name_len == 0 || s.name_len > fmt::kMaxName) {
    c.problem("catalog", at, "entry's name length is " + num(s.name_len) + " (1.." + num(fmt::kMaxName) + ")");
    return;
  }
  const std::string name(s.name, s.name_len);
  const std::string quoted = "'" + name + "'";
  if (!names.insert(name).second) c.problem("catalog", at, "entry " + quoted + " appears twice");
  if (s.kind < 1 || s.kind > 5) {
    c.problem("catalog", at + offsetof(fmt::catalog_slot, kind), "entry " + quoted + " has unknown kind " + num(s.kind));
    c.unknown_blocks = true;  // whatever it owned is unreachable now
    return;
  }
  const std::string where = std::string(kind_name(s.kind)) + " " + quoted;
  bool types_ok = true;
  for (auto [t, field, what] : {std::tuple{&s.key, offsetof(fmt::catalog_slot, key), "key"},
                                std::tuple{&s.value, offsetof(fmt::catalog_slot, value), "value"}}) {
    if (std::string why = type_problem(*t); !why.empty()) {
      c.problem("catalog", at + field, "entry " + quoted + ": " + what + " type: " + why);
      types_ok = false;
    }
  }
  const auto k = static_cast<kind>(s.kind);
  if (types_ok && k != kind::raw) {
    std::string why;
    const bool var = k == kind::bytes_hash_map || k == kind::bytes_tree_map;
    if (var && (!is_bytes(s.key) || !is_bytes(s.value)))
      why = "a byte-string structure needs byte-string key and value types";
    if (!var && (s.key.code == 0 || is_bytes(s.key) || s.value.code == 0 || is_bytes(s.value)))
      why = "a fixed-size structure needs fixed-size key and value types";
    if (k == kind::hash_map && why.empty() && std::uint64_t{s.key.size} + s.value.size > 4000)
      why = "key and value of " + num(s.key.size) + " + " + num(s.value.size) + " bytes exceed a hash map slot";
    if (!why.empty()) {
      c.problem("catalog", at + offsetof(fmt::catalog_slot, key), "entry " + quoted + ": " + why);
      types_ok = false;
    }
  }
  if (s.root != 0 && (s.root < fmt::kArenaOffset || s.root >= c.limit)) {
    c.problem("catalog", at + offsetof(fmt::catalog_slot, root),
              "entry " + quoted + ": root " + num(s.root) + " is outside the arena [" + num(fmt::kArenaOffset) + ", " +
                  num(c.limit) + ")");
    if (k != kind::raw) c.unknown_blocks = true;  // its blocks are unreachable
    return;
  }
  ++c.report.structures;
  if (!types_ok) {
    if (k != kind::raw) c.unknown_blocks = true;
    return;
  }
  switch (k) {
    case kind::raw:
      c.unknown_blocks = true;
      c.note("catalog", at, "raw structure " + quoted + ": its blocks belong to the application and are not checked");
      break;
    case kind::hash_map:
      check_hash_map(c, where, false, s.key.size, s.value.size, s.root);
      break;
    case kind::bytes_hash_map:
      check_hash_map(c, where, true, 0, 0, s.root);
      break;
    case kind::tree_map:
    case kind::bytes_tree_map:
      if (!check_tree(c, where, s.root)) {
        c.unknown_blocks = true;
        c.note(where, s.root, "tree check not built: the B+tree engine is not linked into this program");
      }
      break;
  }
}

void check_catalog(context& c, const fmt::meta_page& m) {
  std::unordered_set<std::uint64_t> pages;
  std::set<std::string> names;
  const std::uint32_t who = c.owner("catalog");
  std::uint64_t link_at = meta_at(offsetof(fmt::meta_page, catalog_head));
  for (std::uint64_t page = m.catalog_head; page != 0;) {
    if (page % kPage != 0 || !c.block_ok(page, kPage)) {
      c.problem("catalog", link_at, "page link " + num(page) + " is outside the arena or not page aligned");
      return;
    }
    if (!pages.insert(page).second) {
      c.problem("catalog", link_at, "page list loops back to page " + num(page));
      return;
    }
    const std::byte* p = c.img.at(page, kPage);
    if (std::memcmp(p, fmt::kCatalogMagic, 8) != 0) {
      c.problem("catalog", page, "page has no KEELCATP magic");
      return;
    }
    c.add_block(page, kPage, who);
    for (std::size_t i = 0; i < fmt::kCatalogEntries; ++i) {
      fmt::catalog_slot s;
      const std::uint64_t at = page + fmt::kCatalogHeader + i * fmt::kCatalogEntry;
      std::memcpy(&s, c.img.base + at, sizeof s);
      if (s.in_use != 0) check_entry(c, at, s, names);
    }
    c.advance(kPage);
    link_at = page + 8;
    std::memcpy(&page, p + 8, 8);
  }
}

void check_blocks(context& c, const fmt::meta_page& m) {
  auto& b = c.blocks;
  std::sort(b.begin(), b.end(), [](const block& x, const block& y) { return x.off < y.off || (x.off == y.off && x.len < y.len); });
  std::uint64_t live = 0, end = 0;
  std::size_t reach = 0;  // the block that reaches `end`
  for (std::size_t i = 0; i < b.size(); ++i) {
    const block& x = b[i];
    if (x.off < fmt::kArenaOffset || x.off > c.limit || x.len > c.limit - x.off) {
      c.problem(c.owners[x.owner], x.off, "block " + span(x.off, x.len) + " lies outside the arena [" +
                                              num(fmt::kArenaOffset) + ", " + num(c.limit) + ")");
    } else if (i > 0 && x.off < end) {
      const block& y = b[reach];
      c.problem("allocator", x.off,
                "block " + span(x.off, x.len) + " of " + c.owners[x.owner] + " overlaps block " + span(y.off, y.len) +
                    " of " + c.owners[y.owner]);
    }
    if (x.off + x.len > end) {
      end = x.off + x.len;
      reach = i;
    }
    if (!x.free) live += x.len;
  }
  c.report.blocks = b.size();
  if (!c.cursor_ok) return;
  const std::uint64_t at = meta_at(offsetof(fmt::meta_page, live_bytes));
  if (live > m.live_bytes || (!c.unknown_blocks && live != m.live_bytes)) {
    c.problem("allocator", at,
              "live bytes says " + num(m.live_bytes) + ", the blocks reachable from the catalog total " + num(live) +
                  " (off by " + signed_diff(m.live_bytes, live) + ")");
  } else if (live < m.live_bytes) {
    c.note("allocator", at,
           num(m.live_bytes - live) + " live bytes are not reachable from checked structures (raw structures, "
           "unchecked trees, or leaked blocks)");
  }
}

}  // namespace

void check_data(context& c, const fmt::superblock& sb) {
  fmt::meta_page m{};
  check_meta(c, sb, m);
  c.progress_total = std::max(c.progress_total, c.progress_done + (c.limit - std::min(c.limit, fmt::kArenaOffset)));
  if (std::memcmp(m.magic, fmt::kMetaMagic, 8) != 0) return;  // nothing else can be trusted
  check_free_lists(c, m);
  if (m.catalog_head == 0 || (m.catalog_head >= fmt::kArenaOffset && m.catalog_head < c.limit)) check_catalog(c, m);
  else c.unknown_blocks = true;
  check_blocks(c, m);
  c.report.lsn = m.commits;
}

}  // namespace keel::checker
