// Hash maps and bytes maps (docs/FORMAT.md, "Hash map", "Byte-string map"):
// root block, both tables of a resize, control bytes, every live entry
// found from its hash, counts; and B+trees through the tree engine's own
// checker (src/tree/check.cc), whose blocks join the overlap and accounting
// pass.
#include <algorithm>
#include <bit>
#include <optional>
#include <string_view>

#include "alloc/allocator.h"
#include "check/check_internal.h"
#include "hash/table.h"
#include "keel/bytes_map.h"

#if __has_include("keel/detail/tree_engine.h")
#include "keel/detail/tree_engine.h"
#define KEEL_CHECK_TREES 1
#endif

namespace keel::checker {

namespace {

using fmt::kGroup;
using fmt::kPage;
using fmt::map_root;
using fmt::map_table;

std::string num(std::uint64_t v) { return std::to_string(v); }

constexpr std::uint32_t kEntryHeader = 24;  // bytes_map entry: u32 key len, u32 flags, u64 value len, u64 value off
constexpr std::uint32_t kOutOfLine = 1;

std::uint64_t block_bytes(std::uint64_t n) { return allocator::class_bytes(allocator::class_of(n)); }

class map_checker {
 public:
  map_checker(context& c, std::string where, bool bytes, std::uint64_t root)
      : c_(c), where_(std::move(where)), bytes_(bytes), root_(root), g_(16, 0) {}

  void run(std::uint32_t key_size, std::uint32_t value_size) {
    if (root_ == 0) return c_.problem(where_, 0, "has no root block");
    if (!c_.block_ok(root_, sizeof(map_root)))
      return c_.problem(where_, root_, "root block " + num(root_) + " is outside the arena or misaligned");
    c_.add_block(root_, block_bytes(sizeof(map_root)), c_.owner(where_ + " root"));
    c_.img.get(root_, rt_);
    if (std::memcmp(rt_.magic, fmt::kMapMagic, 8) != 0) return c_.problem(where_, root_, "root has no KEELHMAP magic");
    if (rt_.key_size != key_size || rt_.value_size != value_size)
      return c_.problem(where_, root_ + offsetof(map_root, key_size),
                        "root records " + num(rt_.key_size) + "/" + num(rt_.value_size) +
                            "-byte keys/values, the catalog " + num(key_size) + "/" + num(value_size));
    if (!bytes_) {
      if (key_size == 0 || std::uint64_t{key_size} + value_size > 4000)
        return c_.problem(where_, root_ + offsetof(map_root, key_size), "key and value sizes out of range");
      g_ = hash::geom(key_size, value_size);
    }
    if (std::string why = table_problem(rt_.cur); !why.empty())
      return c_.problem(where_, root_ + offsetof(map_root, cur), "current table: " + why);
    has_old_ = rt_.old.groups != 0;
    if (has_old_) {
      if (std::string why = table_problem(rt_.old); !why.empty())
        return c_.problem(where_, root_ + offsetof(map_root, old), "old table (resize): " + why);
      if (rt_.migrate >= rt_.old.groups)
        return c_.problem(where_, root_ + offsetof(map_root, migrate),
                          "resize has moved " + num(rt_.migrate) + " of " + num(rt_.old.groups) + " old groups");
    } else if (rt_.migrate != 0 || rt_.old.ctrl != 0 || rt_.old.slots != 0 || rt_.old.used != 0) {
      c_.problem(where_, root_ + offsetof(map_root, old), "no resize runs, but the old table fields are not zero");
    }
    const std::uint64_t bytes = (rt_.cur.groups + rt_.old.groups) * (kGroup + g_.slot);
    if (c_.work + bytes > c_.work_budget()) {
      c_.unknown_blocks = true;
      return c_.problem(where_, root_, "not checked: the structures checked so far already read " + num(c_.work) +
                                           " bytes of a " + num(c_.img.size) + "-byte file (tables shared by several maps?)");
    }
    c_.work += bytes;
    const std::uint32_t tables = c_.owner(where_ + " table");
    for (const map_table* t : {&rt_.cur, &rt_.old}) {
      if (t->groups == 0) continue;
      c_.add_block(t->ctrl, block_bytes(t->groups * kGroup), tables);
      c_.add_block(t->slots, block_bytes(g_.slot_bytes(t->groups)), tables);
    }
    budget_ = 64 * (rt_.cur.groups + rt_.old.groups) + (1u << 16);
    entries_ = c_.owner(where_ + " entry");
    values_ = c_.owner(where_ + " value");
    std::uint64_t live = scan(rt_.cur, 0, offsetof(map_root, cur));
    if (has_old_) live += scan(rt_.old, rt_.migrate, offsetof(map_root, old));
    if (live != rt_.size)
      c_.problem(where_, root_ + offsetof(map_root, size),
                 "size says " + num(rt_.size) + " entries, the tables hold " + num(live));
    c_.report.entries += live;
  }

 private:
  // Why a table descriptor is unusable, or empty.
  std::string table_problem(const map_table& t) const {
    if (t.groups < 1 || t.groups > fmt::kMaxGroups || !std::has_single_bit(t.groups))
      return num(t.groups) + " groups (a power of two up to 2^28)";
    if (t.max_probe >= t.groups) return "max probe " + num(t.max_probe) + " not below " + num(t.groups) + " groups";
    if (t.used > t.groups * kGroup) return "used " + num(t.used) + " exceeds " + num(t.groups * kGroup) + " slots";
    if (!c_.block_ok(t.ctrl, block_bytes(t.groups * kGroup)))
      return "control block " + num(t.ctrl) + " is outside the arena or misaligned";
    if (t.slots % kPage != 0 || !c_.block_ok(t.slots, block_bytes(g_.slot_bytes(t.groups))))
      return "slot block " + num(t.slots) + " is outside the arena or not page aligned";
    return {};
  }

  // The key of a slot as bytes (fixed: in the slot; bytes_map: in its entry
  // block, validated), and the hash the table placed it by.
  struct key_ref {
    std::string_view key;
    std::uint64_t hash;
  };
  std::optional<key_ref> key_at(const map_table& t, std::uint64_t idx, bool report) {
    const std::uint64_t so = g_.slot_off(t, idx);
    const std::byte* s = c_.img.at(so, g_.ks + g_.vs);
    if (!bytes_) {
      const std::string_view k(reinterpret_cast<const char*>(s), g_.ks);
      return key_ref{k, hash::hash_of(s, g_.ks, rt_.seed)};
    }
    std::uint64_t sh, e;
    std::memcpy(&sh, s, 8);
    std::memcpy(&e, s + 8, 8);
    auto bad = [&](const std::string& why) -> std::optional<key_ref> {
      if (report) c_.problem(where_, so, "slot " + num(idx) + ": entry block " + num(e) + ": " + why);
      return std::nullopt;
    };
    if (e < fmt::kArenaOffset || e % 16 != 0 || e > c_.limit || kEntryHeader > c_.limit - e)
      return bad("outside the arena or misaligned");
    std::uint32_t kl, flags;
    std::uint64_t vl, vo;
    const std::byte* h = c_.img.at(e, kEntryHeader);
    std::memcpy(&kl, h, 4);
    std::memcpy(&flags, h + 4, 4);
    std::memcpy(&vl, h + 8, 8);
    std::memcpy(&vo, h + 16, 8);
    const bool ool = (flags & kOutOfLine) != 0;
    if (kl > bytes_map::max_key || vl > bytes_map::max_value || (flags & ~kOutOfLine) != 0 ||
        (!ool && kEntryHeader + kl + vl > kPage))
      return bad("malformed header (key " + num(kl) + " bytes, value " + num(vl) + " bytes, flags " + num(flags) + ")");
    const std::uint64_t len = block_bytes(kEntryHeader + kl + (ool ? 0 : vl));
    if (!c_.block_ok(e, len)) return bad("a " + num(len) + "-byte block cannot sit there");
    const std::string_view k(reinterpret_cast<const char*>(c_.img.at(e + kEntryHeader, kl)), kl);
    if (report) {
      c_.add_block(e, len, entries_);
      if (ool) {
        const std::uint64_t vlen = block_bytes(std::max<std::uint64_t>(vl, 1));
        if (!c_.block_ok(vo, vlen))
          c_.problem(where_, e + 16, "out-of-line value " + num(vo) + " (" + num(vl) + " bytes) is outside the arena or misaligned");
        else
          c_.add_block(vo, vlen, values_);
      } else if (vo != 0) {
        c_.problem(where_, e + 16, "inline value with a value offset");
      }
      const std::uint64_t real = XXH3_64bits_withSeed(k.data(), k.size(), rt_.seed);
      if (real != sh) c_.problem(where_, so, "slot " + num(idx) + ": stored hash does not match its key's");
    }
    return key_ref{k, sh};
  }

  // Bytes of the control group gi of t.
  const std::byte* group(const map_table& t, std::uint64_t gi) const { return c_.img.at(t.ctrl + gi * kGroup, kGroup); }

  // Where a lookup of `k` in t ends: the first matching live slot, or
  // nullopt. Bounded by max_probe and the checker's work budget.
  std::optional<std::uint64_t> lookup(const map_table& t, std::uint64_t dead_below, const key_ref& k, bool& exhausted) {
    const std::uint8_t tag = hash::tag_of(k.hash);
    const std::uint64_t mask = t.groups - 1, home = hash::home_of(k.hash, t.groups);
    for (std::uint64_t p = 0; p <= t.max_probe; ++p) {
      if (budget_ == 0) {
        exhausted = true;
        return std::nullopt;
      }
      --budget_;
      const std::uint64_t gi = (home + p) & mask;
      const std::byte* cb = group(t, gi);
      if (gi >= dead_below)
        for (std::uint32_t m = hash::match(cb, tag); m != 0; m &= m - 1) {
          const std::uint64_t idx = gi * kGroup + static_cast<std::uint64_t>(std::countr_zero(m));
          const auto other = key_at(t, idx, false);
          if (other && other->hash == k.hash && other->key == k.key) return idx;
        }
      if (hash::match_empty(cb) != 0) return std::nullopt;
    }
    return std::nullopt;
  }

  // One table: control bytes, used count, every live entry. Returns live entries.
  std::uint64_t scan(const map_table& t, std::uint64_t dead_below, std::size_t desc_at) {
    std::uint64_t nonempty = 0, live = 0;
    const bool is_old = &t == &rt_.old;
    for (std::uint64_t gi = 0; gi < t.groups; ++gi) {
      const std::byte* cb = group(t, gi);
      for (std::uint64_t i = 0; i < kGroup; ++i) {
        const auto b = static_cast<std::uint8_t>(cb[i]);
        if (b == fmt::kCtrlEmpty) continue;
        ++nonempty;
        if (b == fmt::kCtrlDeleted) continue;
        const std::uint64_t idx = gi * kGroup + i;
        if (b < 0x80) {
          c_.problem(where_, t.ctrl + idx,
                     "control byte " + hex(b) + " of slot " + num(idx) + " is neither empty, deleted nor full");
          continue;
        }
        if (gi < dead_below) continue;  // moved by the resize: the slot is dead
        ++live;
        entry(t, dead_below, idx, b, is_old);
      }
      if ((gi & 4095) == 4095) c_.advance(4096 * (kGroup + g_.slot));
    }
    c_.advance((t.groups & 4095) * (kGroup + g_.slot));
    if (nonempty != t.used)
      c_.problem(where_, root_ + desc_at + offsetof(map_table, used),
                 std::string(is_old ? "old" : "current") + " table: used says " + num(t.used) + ", " + num(nonempty) +
                     " slots are not empty");
    return live;
  }

  void entry(const map_table& t, std::uint64_t dead_below, std::uint64_t idx, std::uint8_t ctrl, bool is_old) {
    const std::uint64_t so = g_.slot_off(t, idx);
    const auto k = key_at(t, idx, true);
    if (!k) return;
    const std::uint8_t tag = hash::tag_of(k->hash);
    if (tag != ctrl) {
      c_.problem(where_, t.ctrl + idx,
                 "control byte " + hex(ctrl) + " of slot " + num(idx) + " does not match its key's hash (expected " +
                     hex(tag) + "): lookups cannot find the entry");
      return;
    }
    const std::uint64_t home = hash::home_of(k->hash, t.groups), gi = idx / kGroup;
    const std::uint64_t dist = (gi - home) & (t.groups - 1);
    if (dist > t.max_probe) {
      c_.problem(where_, so,
                 "slot " + num(idx) + ": the key sits " + num(dist) + " groups from its home group " + num(home) +
                     ", past max probe " + num(t.max_probe) + ": lookups cannot find it");
      return;
    }
    if (exhausted_) return;
    const auto found = lookup(t, dead_below, *k, exhausted_);
    if (exhausted_) {
      c_.problem(where_, root_, "probe sequences too long to verify every lookup (work budget spent)");
      return;
    }
    if (!found) {
      c_.problem(where_, so,
                 "slot " + num(idx) + ": a lookup of its key stops before reaching it (a group with an empty slot "
                 "lies between its home group " + num(home) + " and group " + num(gi) + ")");
      return;
    }
    if (*found != idx) {
      c_.problem(where_, so, "slot " + num(idx) + ": its key is also at slot " + num(*found) + ", where lookups find it");
      return;
    }
    if (is_old) {  // an entry is in exactly one table
      const auto dup = lookup(rt_.cur, 0, *k, exhausted_);
      if (dup)
        c_.problem(where_, so,
                   "old-table slot " + num(idx) + ": its key is also in the current table (slot " + num(*dup) +
                       "), which hides it");
    }
  }

  context& c_;
  std::string where_;
  bool bytes_;
  std::uint64_t root_;
  hash::geom g_;
  map_root rt_{};
  bool has_old_ = false;
  std::uint64_t budget_ = 0;
  bool exhausted_ = false;
  std::uint32_t entries_ = 0, values_ = 0;
};

}  // namespace

void check_hash_map(context& c, const std::string& where, bool bytes, std::uint32_t key_size, std::uint32_t value_size,
                    std::uint64_t root) {
  map_checker(c, where, bytes, root).run(key_size, value_size);
}

bool check_tree(context& c, const std::string& where, std::uint64_t root) {
#ifdef KEEL_CHECK_TREES
  const read_view v = detail::view_access::make(c.img.base, fmt::kArenaOffset, c.limit, &c.path);
  std::vector<std::pair<std::uint64_t, std::string>> problems;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> blocks;
  try {
    detail::tree_check(v, root, problems, &blocks);
  } catch (const error& e) {
    c.problem(where, root, std::string("tree check stopped: ") + e.what());
  }
  if (problems.empty()) {
    try {
      c.report.entries += detail::tree_size(v, root);
    } catch (const error&) {
    }
  }
  for (auto& [off, what] : problems) c.problem(where, off, std::move(what));
  const std::uint32_t who = c.owner(where);
  for (const auto& [off, len] : blocks) c.add_block(off, len == 0 ? 0 : block_bytes(len), who);  // as allocated
  return true;
#else
  (void)c, (void)where, (void)root;
  return false;
#endif
}

}  // namespace keel::checker
