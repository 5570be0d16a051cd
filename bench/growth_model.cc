// keel-growth-model: how a hash table of Keel's shape grows, measured
// without the transaction machinery (docs/PERFORMANCE.md, "Growth that
// moves half: a model").
//
// Four growth strategies fill the same random u64 keys (32-byte values)
// into a table laid out as keel::hash_map lays out its own: 16-slot groups
// of control bytes (empty 0x00, deleted 0x01, full 0x80 | 7 hash bits),
// 40-byte slots packed into 4 KiB pages, a preferred slot per key, probing
// group by group, a 7/8 load limit. The table lives in a shared mapping of
// a file in --dir (MADV_RANDOM, grown with fallocate), as a store's arena
// does, so fresh pages cost what they cost Keel. What is left out: the
// transaction (page copies, the redo log, commit), which a real move pays
// on top.
//
//   two-table    Keel today: a doubling allocates a new table of twice the
//                groups (home group from the high hash bits) and every
//                insert moves 4 old groups into it; lookups try both.
//   two-table-lo the same with the home group from the low hash bits, as a
//                split needs: a control that separates what the home bits
//                do to lookups from what splitting does.
//   split        linear hashing: home group from the low hash bits, the
//                new half of the slots appended as a segment (the control
//                block, 1/40 of the slots' size, is copied into one of
//                twice the size), and every insert splits
//                4 home groups g into g and g + N in place: only the keys
//                whose next bit is set move. Vacated slots of a group that
//                had no empty slot become tombstones (probes pass through
//                it), and they pile up.
//   split-clean  split, and the split of home g also re-places every key
//                whose probe passes through group g (keys of g that had
//                overflowed, keys of earlier homes beyond g), so that
//                group g ends with no tombstone and empty slots wherever
//                it has room.
//
// Each round fills one fresh table per strategy, in turn (round r starts
// with the r-th; sync() before each fill), keeps them, times passes of
// random gets of present keys over them in turn (a get prefetches the
// preferred slot while the control bytes load, as keel::hash_map's does),
// and checks that every key is found. New slot blocks of 1 MiB or more
// are populated front to back when allocated, as keel's prefaulter does
// (--populate=0: not). --erase_every=K: after every K-th insert the fill
// erases an earlier key (the same ones for every strategy), so erases meet
// running splits and moves; the check then also wants every erased key
// absent. --walk=1: the split tables are also walked by hash classes
// while they fill (HASH_GROWTH.md, "Iteration"), and the check wants no key
// seen twice and every key present for the whole walk seen. Exit status 1
// when a check fails; --drop_one=1 has split-clean
// lose one key in its first split, to show that it does.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace {

using u64 = std::uint64_t;
using u8 = std::uint8_t;
constexpr u64 kPage = 4096, kGroup = 16, kSlot = 40, kSpp = kPage / kSlot;
constexpr u8 kEmpty = 0x00, kDeleted = 0x01;
constexpr u64 kSeed = 0x6b65656c2d67726full;
constexpr int kStepGroups = 4;  // groups moved or split per insert, as keel::hash_map does
bool g_drop_one = false;        // --drop_one=1: the check must catch a key a split loses
bool g_populate = true;         // --populate=0: no populate of new slot blocks (see arena::populate)

struct value {
  unsigned char b[32];
};

// A file of fresh space handed out front to back, as the arena's bump cursor does.
class arena {
 public:
  explicit arena(const std::string& path) : path_(path) {
    ::unlink(path.c_str());
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
    if (fd_ < 0) fail("open");
    void* p = ::mmap(nullptr, kCap, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd_, 0);
    if (p == MAP_FAILED) fail("mmap");
    base_ = static_cast<std::byte*>(p);
    ::madvise(base_, kCap, MADV_RANDOM);
  }
  ~arena() {
    ::munmap(base_, kCap);
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  arena(const arena&) = delete;
  arena& operator=(const arena&) = delete;
  u64 alloc(u64 n) {
    const u64 at = (cursor_ + kPage - 1) & ~(kPage - 1);
    cursor_ = at + n;
    if (cursor_ > size_) {  // the store's growth step: half the size, 1 MiB to 1 GiB
      const u64 step = std::clamp<u64>(size_ / 2, u64{1} << 20, u64{1} << 30);
      const u64 to = (std::max(cursor_, size_ + step) + kPage - 1) & ~(kPage - 1);
      if (to > kCap || ::fallocate(fd_, 0, static_cast<off_t>(size_), static_cast<off_t>(to - size_)) != 0)
        fail("fallocate");
      size_ = to;
    }
    return at;
  }
  std::byte* at(u64 off) const { return base_ + off; }
  // What keel's prefaulter does with a new slot block of 1 MiB or more:
  // make its pages writable front to back, in one stream (here on this
  // thread, before the moves start). Pages faulted in one stream tend to
  // be physically contiguous, which the TLB can exploit.
  void populate(u64 off, u64 len) {
    if (g_populate && len >= (u64{1} << 20)) ::madvise(base_ + off, len, MADV_POPULATE_WRITE);
  }
  u64 used() const { return cursor_; }

 private:
  static constexpr u64 kCap = u64{64} << 30;
  [[noreturn]] void fail(const char* what) {
    std::perror(what);
    std::exit(2);
  }
  std::string path_;
  int fd_ = -1;
  std::byte* base_ = nullptr;
  u64 size_ = 0, cursor_ = kPage;
};

u64 hash_of(u64 k) { return XXH3_64bits_withSeed(&k, 8, kSeed); }
u8 tag_of(u64 h) { return static_cast<u8>(0x80 | (h & 0x7f)); }
unsigned preferred(u64 h) { return static_cast<unsigned>((h >> 7) & 15); }
u64 low_home(u64 h, u64 groups) { return (h >> 11) & (groups - 1); }  // bits above the tag and the preferred slot
u64 high_home(u64 h, u64 groups) { return (h >> 1) >> (63 - std::countr_zero(groups)); }  // keel's home_group

std::uint32_t match(const u8* c, u8 t) {
#if defined(__SSE2__)
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c));
  return static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(static_cast<char>(t)))));
#else
  std::uint32_t m = 0;
  for (unsigned i = 0; i < kGroup; ++i) m |= (c[i] == t ? 1u : 0u) << i;
  return m;
#endif
}
std::uint32_t match_free(const u8* c) {  // empty or deleted
  std::uint32_t m = 0;
  for (unsigned i = 0; i < kGroup; ++i) m |= ((c[i] & 0x80) ? 0u : 1u) << i;
  return m;
}
std::uint32_t match_full(const u8* c) { return ~match_free(c) & 0xffff; }
bool has_empty(const u8* c) { return match(c, kEmpty) != 0; }
u64 slot_bytes(u64 groups) { return (groups * kGroup + kSpp - 1) / kSpp * kPage; }
u64 slot_off(u64 slots, u64 idx) { return slots + idx / kSpp * kPage + idx % kSpp * kSlot; }

// Puts (k, v) into the group at ctrl c whose slot i is at slot(i); false when the group is full.
template <class Slot>
bool put_in_group(u8* c, Slot slot, u64 k, const value& v, u64 h, u64& used) {
  const std::uint32_t free = match_free(c);
  if (free == 0) return false;
  const unsigned p = preferred(h);
  const unsigned i = (free >> p) & 1 ? p : static_cast<unsigned>(std::countr_zero(free));
  if (c[i] == kEmpty) ++used;
  c[i] = tag_of(h);
  std::byte* d = slot(i);
  std::memcpy(d, &k, 8);
  std::memcpy(d + 8, &v, sizeof v);
  return true;
}

// A slot leaves: empty when its group has an empty slot (no probe passes
// through a group with one) or the caller knows none passes, else deleted.
// keel::hash_map's erase rule; `used` counts slots not empty.
void vacate(u8* c, unsigned i, bool may_empty, u64& used) {
  if (may_empty || has_empty(c)) {
    c[i] = kEmpty;
    --used;
  } else {
    c[i] = kDeleted;
  }
}

// ---- two-table: Keel's current growth. kLowHome: the same with the home
// group from the low hash bits, as the split needs (a control for lookups).
template <bool kLowHome>
class two_table {
 public:
  explicit two_table(arena& a) : a_(a) { cur_ = make(1); }
  static constexpr const char* name = kLowHome ? "two-table-lo" : "two-table";
  static u64 home(u64 h, u64 groups) { return kLowHome ? low_home(h, groups) : high_home(h, groups); }
  // As keel::hash_map's get: the preferred slot is fetched while the control bytes load.
  bool contains(u64 k, u64 h) {
    __builtin_prefetch(slot(cur_, home(h, cur_.groups) * kGroup + preferred(h)));
    return locate(k, h).t != nullptr;
  }
  void insert(u64 k, const value& v) {
    if (old_.groups != 0) move(kStepGroups);
    const u64 h = hash_of(k);
    if (contains(k, h)) return;
    if ((cur_.used + 1) * 8 > cur_.groups * kGroup * 7) {
      move(UINT64_MAX);
      old_ = cur_;
      cur_ = make(old_.groups * 2);
      migrate_ = 0;
    }
    place(cur_, k, v, h);
    ++size_;
  }
  // Removes k, as keel::hash_map's erase does (a write: it moves old groups first).
  bool erase(u64 k, u64 h) {
    if (old_.groups != 0) move(kStepGroups);
    const spot s = locate(k, h);
    if (s.t == nullptr) return false;
    vacate(ctrl(*s.t, s.g), s.i, false, s.t->used);
    --size_;
    return true;
  }
  u64 size() const { return size_; }
  u64 groups() const { return cur_.groups; }
  u64 max_probe() const { return cur_.max_probe; }
  u64 tombstones() {  // deleted control bytes in the live groups of both tables
    u64 n = 0;
    for (const table* t : {&cur_, &old_})
      for (u64 g = t == &old_ ? migrate_ : 0; g < t->groups; ++g) n += std::popcount(match(ctrl(*t, g), kDeleted));
    return n;
  }
  u64 moves() const { return moves_; }

 private:
  struct table {
    u64 ctrl = 0, slots = 0, groups = 0, used = 0, max_probe = 0;
  };
  struct spot {  // where a key is: t == nullptr when absent
    table* t = nullptr;
    u64 g = 0;
    unsigned i = 0;
  };
  table make(u64 groups) {
    table t;
    t.groups = groups;
    t.ctrl = a_.alloc(groups * kGroup);
    t.slots = a_.alloc(slot_bytes(groups));
    std::memset(a_.at(t.ctrl), 0, groups * kGroup);
    a_.populate(t.slots, slot_bytes(groups));
    return t;
  }
  u8* ctrl(const table& t, u64 g) { return reinterpret_cast<u8*>(a_.at(t.ctrl + g * kGroup)); }
  std::byte* slot(const table& t, u64 idx) { return a_.at(slot_off(t.slots, idx)); }
  // The current table, then the old one, whose groups below migrate_ were
  // moved already: probed through, never matched.
  spot locate(u64 k, u64 h) {
    for (table* t : {&cur_, &old_}) {
      if (t->groups == 0) continue;
      const u64 hm = home(h, t->groups), dead_below = t == &old_ ? migrate_ : 0;
      for (u64 p = 0; p <= t->max_probe; ++p) {
        const u64 g = (hm + p) & (t->groups - 1);
        const u8* c = ctrl(*t, g);
        if (g >= dead_below)
          for (std::uint32_t m = match(c, tag_of(h)); m != 0; m &= m - 1) {
            const unsigned i = static_cast<unsigned>(std::countr_zero(m));
            u64 kk;
            std::memcpy(&kk, slot(*t, g * kGroup + i), 8);
            if (kk == k) return {t, g, i};
          }
        if (has_empty(c)) break;
      }
    }
    return {};
  }
  void place(table& t, u64 k, const value& v, u64 h) {
    const u64 hm = home(h, t.groups);
    for (u64 p = 0;; ++p) {
      const u64 g = (hm + p) & (t.groups - 1);
      if (put_in_group(ctrl(t, g), [&](unsigned i) { return slot(t, g * kGroup + i); }, k, v, h, t.used)) {
        t.max_probe = std::max(t.max_probe, p);
        return;
      }
    }
  }
  void move(u64 groups) {
    for (u64 n = 0; n < groups && old_.groups != 0; ++n) {
      const u64 g = migrate_;
      u8 c[kGroup];
      std::memcpy(c, ctrl(old_, g), kGroup);
      for (std::uint32_t m = match_full(c); m != 0; m &= m - 1) {
        const std::byte* e = slot(old_, g * kGroup + static_cast<u64>(std::countr_zero(m)));
        u64 k;
        value v;
        std::memcpy(&k, e, 8);
        std::memcpy(&v, e + 8, sizeof v);
        place(cur_, k, v, hash_of(k));
        ++moves_;
      }
      if (++migrate_ == old_.groups) old_ = {}, migrate_ = 0;
    }
  }
  arena& a_;
  table cur_, old_;
  u64 migrate_ = 0, size_ = 0, moves_ = 0;
};

// ---- split and split-clean: linear hashing in place over segments
template <bool kClean>
class split_table {
 public:
  explicit split_table(arena& a) : a_(a) { add_segment(1); }
  static constexpr const char* name = kClean ? "split-clean" : "split";
  bool contains(u64 k, u64 h) {
    const addressing ad = addressing_of(h);
    __builtin_prefetch(slot(ad.home, preferred(h)));
    return locate(k, h, ad).found;
  }
  void insert(u64 k, const value& v) {
    for (int n = 0; n < kStepGroups && splitting_; ++n) split_next();
    const u64 h = hash_of(k);
    if (contains(k, h)) return;
    if (!splitting_ && (used_ + 1) * 8 > n_ * kGroup * 7) {
      add_segment(n_);  // groups [N, 2N)
      splitting_ = true;
      split_ = 0;
      max_probe2_ = 0;
    }
    const addressing ad = addressing_of(h);
    place(ad, k, v, h);
    ++size_;
  }
  // Removes k: a write, so it splits first; the slot is vacated by the
  // erase rule (empty when its group has an empty slot, else deleted).
  bool erase(u64 k, u64 h) {
    for (int n = 0; n < kStepGroups && splitting_; ++n) split_next();
    const spot s = locate(k, h, addressing_of(h));
    if (!s.found) return false;
    vacate(ctrl(s.g), s.i, false, used_);
    --size_;
    return true;
  }
  // A walk by hash classes (HASH_GROWTH.md, "Iteration"). Its width W is
  // the N-group addressing's size when it starts; slice [a, b) holds the
  // keys whose class home_W(h) lies in [a, b). One call is one consistent
  // read: it scans the home runs of those classes, with their probe tails,
  // under every addressing in effect, each group once.
  u64 walk_width() const { return n_; }
  template <class Out>
  void walk_slice(u64 w, u64 a, u64 b, Out&& out) {
    runs_.clear();
    const auto add = [&](u64 lo, u64 len, u64 groups) {  // len groups from lo, wrapping at groups
      if (len >= groups) {
        runs_.push_back({0, groups});
      } else if (lo + len <= groups) {
        runs_.push_back({lo, lo + len});
      } else {
        runs_.push_back({lo, groups});
        runs_.push_back({0, lo + len - groups});
      }
    };
    const auto add_addressing = [&](u64 groups, u64 max_probe) {
      if (groups >= w)
        for (u64 k = 0; k < groups / w; ++k) add(a + k * w, b - a + max_probe, groups);
      else
        add(a % groups, b - a + max_probe, groups);
    };
    add_addressing(n_, max_probe_);
    if (splitting_) add_addressing(2 * n_, max_probe2_);
    std::sort(runs_.begin(), runs_.end());
    u64 next = 0;  // groups below it are scanned already
    for (const auto& [lo, hi] : runs_)
      for (u64 g = std::max(lo, next); g < hi; ++g) {
        const u8* c = ctrl(g);
        for (std::uint32_t m = match_full(c); m != 0; m &= m - 1) {
          u64 k;
          std::memcpy(&k, slot(g, static_cast<unsigned>(std::countr_zero(m))), 8);
          const u64 cls = low_home(hash_of(k), w);
          if (cls >= a && cls < b) out(k);
        }
        next = g + 1;
      }
  }
  u64 size() const { return size_; }
  u64 groups() const { return splitting_ ? 2 * n_ : n_; }
  u64 max_probe() const { return std::max(max_probe_, splitting_ ? max_probe2_ : 0); }
  u64 tombstones() {  // deleted control bytes
    u64 n = 0;
    for (u64 g = 0; g < groups(); ++g) n += std::popcount(match(ctrl(g), kDeleted));
    return n;
  }
  u64 moves() const { return moves_; }

 private:
  // The control bytes stay one block, reallocated (copied) at each
  // doubling: 16 bytes a group against 640 of slots. The slots grow by
  // segments that never move: segment 0 holds group 0, segment j >= 1
  // groups [2^(j-1), 2^j).
  void add_segment(u64 groups) {
    const u64 total = slots_.empty() ? groups : 2 * groups;
    const u64 c = a_.alloc(total * kGroup);
    if (!slots_.empty()) std::memcpy(a_.at(c), ctrl_, groups * kGroup);
    std::memset(a_.at(c + (total - groups) * kGroup), 0, groups * kGroup);
    ctrl_ = reinterpret_cast<u8*>(a_.at(c));  // the old block is garbage, as a freed one would be
    slots_.push_back(a_.alloc(slot_bytes(groups)));
    a_.populate(slots_.back(), slot_bytes(groups));
  }
  static unsigned segment(u64 g) { return static_cast<unsigned>(std::bit_width(g)); }
  static u64 segment_base(unsigned j) { return j == 0 ? 0 : u64{1} << (j - 1); }
  u8* ctrl(u64 g) { return ctrl_ + g * kGroup; }
  std::byte* slot(u64 g, unsigned i) {
    const unsigned j = segment(g);
    return a_.at(slot_off(slots_[j], (g - segment_base(j)) * kGroup + i));
  }
  // A home below the split pointer is addressed in the doubled table.
  struct addressing {
    u64 home, mask;
    u64* max_probe;
  };
  addressing addressing_of(u64 h) {
    const u64 hn = low_home(h, n_);
    if (splitting_ && hn < split_) return {low_home(h, 2 * n_), 2 * n_ - 1, &max_probe2_};
    return {hn, n_ - 1, &max_probe_};
  }
  struct spot {
    bool found = false;
    u64 g = 0;
    unsigned i = 0;
  };
  spot locate(u64 k, u64 h, const addressing& ad) {
    for (u64 p = 0; p <= *ad.max_probe; ++p) {
      const u64 g = (ad.home + p) & ad.mask;
      const u8* c = ctrl(g);
      for (std::uint32_t m = match(c, tag_of(h)); m != 0; m &= m - 1) {
        const unsigned i = static_cast<unsigned>(std::countr_zero(m));
        u64 kk;
        std::memcpy(&kk, slot(g, i), 8);
        if (kk == k) return {true, g, i};
      }
      if (has_empty(c)) break;
    }
    return {};
  }
  void place(const addressing& ad, u64 k, const value& v, u64 h) {
    for (u64 p = 0;; ++p) {
      const u64 g = (ad.home + p) & ad.mask;
      if (put_in_group(ctrl(g), [&](unsigned i) { return slot(g, i); }, k, v, h, used_)) {
        *ad.max_probe = std::max(*ad.max_probe, p);
        return;
      }
    }
  }
  struct entry {
    u64 k;
    value v;
    u64 h;
  };
  // Splits home group g = split_ of the N-group table into g and g + N.
  void split_next() {
    const u64 g = split_, mask = n_ - 1;
    redo_.clear();
    // The probe chain of g: from g up to the first group with an empty slot.
    for (u64 p = 0; p <= max_probe_; ++p) {
      const u64 q = (g + p) & mask;
      u8* c = ctrl(q);
      const bool had_empty = has_empty(c);
      for (std::uint32_t m = match_full(c); m != 0; m &= m - 1) {
        const unsigned i = static_cast<unsigned>(std::countr_zero(m));
        u64 k;
        std::memcpy(&k, slot(q, i), 8);
        const u64 h = hash_of(k), hn = low_home(h, n_);
        bool take;
        if (hn == g) {
          // Ours: the keys whose next bit is set go to g + N; with kClean
          // the ones that overflowed past g come back to it too.
          const u64 h2 = low_home(h, 2 * n_);
          take = h2 != g || (kClean ? q != g : q < g);  // q < g: wrapped past the top, unreachable from g in 2N
          // One that stays is now addressed in the doubled table, at the
          // same distance (inserts may have lengthened the N-table's probes
          // since the split began).
          if (!take) max_probe2_ = std::max(max_probe2_, p);
        } else if (!kClean) {
          take = false;
        } else if (hn < split_ && low_home(h, 2 * n_) >= n_) {
          take = false;  // a key of the upper half that wrapped into the bottom
        } else {
          // Another home's key, in g or beyond it: does its probe pass through g?
          const u64 home = hn < split_ ? low_home(h, 2 * n_) : hn;
          take = q == g || ((q - (home & mask)) & mask) > ((q - g) & mask);
        }
        if (!take) continue;
        entry e{k, {}, h};
        std::memcpy(&e.v, slot(q, i) + 8, sizeof e.v);
        redo_.push_back(e);
        vacate(c, i, kClean && q == g, used_);
      }
      if (had_empty) break;
    }
    if (kClean) {  // no probe passes through g any more: its tombstones can go
      u8* c = ctrl(g);
      for (unsigned i = 0; i < kGroup; ++i)
        if (c[i] == kDeleted) c[i] = kEmpty, --used_;
    }
    // Re-placed by the addressing they have once g is split.
    ++split_;
    for (const entry& e : redo_) {
      if (kClean && g_drop_one && moves_ == 0) {  // self-test: lose this key
        g_drop_one = false;
        continue;
      }
      place(addressing_of(e.h), e.k, e.v, e.h);
      ++moves_;
    }
    if (split_ == n_) {
      splitting_ = false;
      n_ *= 2;
      max_probe_ = max_probe2_;
      max_probe2_ = 0;
      split_ = 0;
    }
  }
  arena& a_;
  u8* ctrl_ = nullptr;
  std::vector<u64> slots_;
  std::vector<entry> redo_;
  std::vector<std::pair<u64, u64>> runs_;
  u64 n_ = 1, split_ = 0, used_ = 0, size_ = 0, max_probe_ = 0, max_probe2_ = 0, moves_ = 0;
  bool splitting_ = false;
};

u64 key_of(u64 i) {  // splitmix64 of i: distinct for distinct i
  u64 z = i * 0x9e3779b97f4a7c15ull + 1;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// --erase_every=K: after every K-th insert, the fill erases an earlier key
// (the same ones for every strategy), so that erases meet running splits.
u64 g_erase_every = 0;
bool g_walk = false;  // --walk=1: the split tables are walked by hash classes during their fill
bool erases_after(u64 i) { return g_erase_every != 0 && i % g_erase_every == g_erase_every - 1; }
u64 erase_target(u64 i) { return key_of(i ^ 0x5555) % (i + 1); }  // an index inserted already

struct outcome {
  double fill_ns = 0, get_ns = 0;
  u64 moves = 0, file = 0, groups = 0, max_probe = 0, tombstones = 0, bad = 0;
};

// One filled table, kept while the round's get passes alternate between them.
class filled {
 public:
  virtual ~filled() = default;
  virtual double fill(u64 num) = 0;                      // ns per insert
  virtual double get_pass(const std::vector<u64>& keys) = 0;  // ns per get; counts misses in bad
  virtual outcome finish(u64 num, const std::vector<bool>& live) = 0;  // checks every key, reports the shape
  u64 bad = 0;
};

template <class T>
class filled_as final : public filled {
 public:
  explicit filled_as(const std::string& dir) : a_(dir + "/growth-model-" + T::name + ".dat"), t_(a_) {}
  double fill(u64 num) override {
    value v{};
    const auto t0 = clk::now();
    for (u64 i = 0; i < num; ++i) {
      v.b[0] = static_cast<unsigned char>(i);
      t_.insert(key_of(i), v);
      if (erases_after(i)) {
        const u64 k = key_of(erase_target(i));
        t_.erase(k, hash_of(k));
      }
      if constexpr (requires { t_.walk_width(); })
        if (g_walk) walk_step(i, num);
    }
    return ns_since(t0, num);
  }
  // --walk=1: a walk of 64 slices starts after insert num / 3, one slice
  // every num / 192 inserts, so that it spans splits, moves and erases.
  void walk_step(u64 i, u64 num) {
    const u64 start = num / 3, every = std::max<u64>(1, num / 192);
    if (i == start) {
      walk_w_ = t_.walk_width();
      walk_next_ = 0;
      walk_first_ = i;
      walking_ = true;
    }
    if (!walking_ || (i - walk_first_) % every != 0) return;
    const u64 slices = std::min<u64>(64, walk_w_), width = walk_w_ / slices;
    t_.walk_slice(walk_w_, walk_next_ * width, (walk_next_ + 1) * width, [&](u64 k) { walk_seen_.push_back(k); });
    if (++walk_next_ == slices) walking_ = false, walk_last_ = i;
  }
  // What the walk must have seen: no key twice, every key present from its
  // first slice to its last, and nothing that was absent for all of it.
  u64 walk_errors(u64 num) const {
    if constexpr (!requires { t_.walk_width(); }) {
      return 0;
    } else {
      if (!g_walk || num < 192) return 0;
      if (walking_) return 1;  // never finished
      std::vector<u64> erased_at(num, UINT64_MAX);  // first erase of each key
      for (u64 e = 0; e < num; ++e)
        if (erases_after(e) && erased_at[erase_target(e)] == UINT64_MAX) erased_at[erase_target(e)] = e;
      std::unordered_map<u64, u64> index;
      for (u64 j = 0; j <= walk_last_; ++j) index.emplace(key_of(j), j);
      std::vector<bool> seen(num, false);
      u64 errors = 0;
      for (const u64 k : walk_seen_) {
        const auto it = index.find(k);
        if (it == index.end() || seen[it->second] || erased_at[it->second] <= walk_first_) {
          ++errors;  // unknown, seen twice, or erased before the walk began
          continue;
        }
        seen[it->second] = true;
      }
      for (u64 j = 0; j <= walk_first_; ++j)
        if (erased_at[j] > walk_last_ && !seen[j]) ++errors;  // present throughout, missed
      return errors;
    }
  }
  double get_pass(const std::vector<u64>& keys) override {
    u64 found = 0;
    const auto t0 = clk::now();
    for (const u64 k : keys) found += t_.contains(k, hash_of(k)) ? 1 : 0;
    const double ns = ns_since(t0, keys.size());
    bad += keys.size() - found;
    return ns;
  }
  outcome finish(u64 num, const std::vector<bool>& live) override {
    outcome o;
    u64 want = 0;
    for (u64 i = 0; i < num; ++i) {
      want += live[i] ? 1 : 0;
      bad += t_.contains(key_of(i), hash_of(key_of(i))) == live[i] ? 0 : 1;  // present iff not erased
    }
    bad += t_.size() == want ? 0 : 1;
    bad += walk_errors(num);
    o.bad = bad;
    o.moves = t_.moves();
    o.file = a_.used();
    o.groups = t_.groups();
    o.max_probe = t_.max_probe();
    o.tombstones = t_.tombstones();
    return o;
  }

 private:
  using clk = std::chrono::steady_clock;
  static double ns_since(clk::time_point t0, u64 n) {
    return std::chrono::duration<double>(clk::now() - t0).count() * 1e9 / static_cast<double>(std::max<u64>(n, 1));
  }
  arena a_;
  T t_;
  std::vector<u64> walk_seen_;
  u64 walk_w_ = 0, walk_next_ = 0, walk_first_ = 0, walk_last_ = 0;
  bool walking_ = false;
};

constexpr int kGetPasses = 5;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

u64 flag(int argc, char** argv, std::string_view name, u64 def) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a.size() > name.size() + 3 && a.substr(0, 2) == "--" && a.substr(2, name.size()) == name &&
        a[2 + name.size()] == '=')
      return std::strtoull(argv[i] + 3 + name.size(), nullptr, 10);
  }
  return def;
}

}  // namespace

int main(int argc, char** argv) {
  const u64 num = flag(argc, argv, "num", 10000000), rounds = std::max<u64>(1, flag(argc, argv, "rounds", 3));
  const u64 gets = std::min<u64>(num, 4000000);
  g_drop_one = flag(argc, argv, "drop_one", 0) != 0;
  g_erase_every = flag(argc, argv, "erase_every", 0);
  g_walk = flag(argc, argv, "walk", 0) != 0;
  g_populate = flag(argc, argv, "populate", 1) != 0;
  std::string dir = "/tmp";
  for (int i = 1; i < argc; ++i)
    if (std::string_view(argv[i]).substr(0, 6) == "--dir=") dir = argv[i] + 6;
  constexpr int kN = 4;
  const char* names[kN] = {two_table<false>::name, two_table<true>::name, split_table<false>::name,
                           split_table<true>::name};
  std::vector<double> fill[kN], get[kN], ratio_fill[kN], ratio_get[kN];
  outcome last[kN];
  u64 bad = 0;
  // Keys drawn before any clock starts: the get passes time lookups only.
  std::vector<u64> keys(gets);
  std::vector<bool> live(num, true);  // what every strategy must hold after its fill
  std::vector<u64> live_index;
  for (u64 i = 0; i < num; ++i)
    if (erases_after(i)) live[erase_target(i)] = false;
  for (u64 i = 0; i < num; ++i)
    if (live[i]) live_index.push_back(i);
  if (live_index.empty()) keys.clear();  // everything erased: nothing to get
  for (u64 i = 0; i < keys.size(); ++i) keys[i] = key_of(live_index[key_of(i) % live_index.size()]);
  std::printf("keel-growth-model: %llu u64 keys -> 32-byte values, %llu rounds, files in %s\n",
              static_cast<unsigned long long>(num), static_cast<unsigned long long>(rounds), dir.c_str());
  for (u64 r = 0; r < rounds; ++r) {
    std::unique_ptr<filled> t[kN] = {std::make_unique<filled_as<two_table<false>>>(dir),
                                     std::make_unique<filled_as<two_table<true>>>(dir),
                                     std::make_unique<filled_as<split_table<false>>>(dir),
                                     std::make_unique<filled_as<split_table<true>>>(dir)};
    double f[kN], g[kN];
    for (int j = 0; j < kN; ++j) {  // round r starts with the r-th
      const int s = static_cast<int>((static_cast<u64>(j) + r) % kN);
      ::sync();  // the tables filled before are written back first, not during this fill
      f[s] = t[s]->fill(num);
    }
    std::vector<double> passes[kN];
    for (int p = 0; p < kGetPasses; ++p)
      for (int j = 0; j < kN; ++j) {
        const int s = static_cast<int>((static_cast<u64>(j) + static_cast<u64>(p)) % kN);
        passes[s].push_back(t[s]->get_pass(keys));
      }
    for (int s = 0; s < kN; ++s) {
      g[s] = median(passes[s]);
      last[s] = t[s]->finish(num, live);
      bad += last[s].bad;
      fill[s].push_back(f[s]);
      get[s].push_back(g[s]);
      ratio_fill[s].push_back(f[s] / f[0]);
      ratio_get[s].push_back(g[s] / g[0]);
      std::printf("  round %llu %-12s fill %7.1f ns/insert  get %6.1f ns (median of %d passes)%s\n",
                  static_cast<unsigned long long>(r + 1), names[s], f[s], g[s], kGetPasses,
                  last[s].bad != 0 ? "  KEYS MISSING" : "");
    }
  }
  std::printf("\n%-12s %12s %10s %8s %8s %10s %9s %8s %10s %11s\n", "strategy", "fill ns/ins", "get ns", "fill/2t",
              "get/2t", "moves", "file MiB", "groups", "max probe", "tombstones");
  for (int s = 0; s < kN; ++s)
    std::printf("%-12s %12.1f %10.1f %7.2fx %7.2fx %9.2fM %9.0f %8llu %10llu %11llu\n", names[s], median(fill[s]),
                median(get[s]), median(ratio_fill[s]), median(ratio_get[s]), static_cast<double>(last[s].moves) / 1e6,
                static_cast<double>(last[s].file) / 1048576.0, static_cast<unsigned long long>(last[s].groups),
                static_cast<unsigned long long>(last[s].max_probe), static_cast<unsigned long long>(last[s].tombstones));
  std::printf("(medians of rounds; ratios are medians of per-round ratios to two-table; each round fills one table\n"
              " per strategy, then alternates get passes over them; moves, file, groups, max probe and tombstones\n"
              " left are the last round's)\n");
  if (bad != 0) {
    std::printf("CHECK FAILED: %llu keys missing or sizes wrong\n", static_cast<unsigned long long>(bad));
    return 1;
  }
  std::printf("check: every key found in every table\n");
  return 0;
}
