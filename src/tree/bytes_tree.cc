// keel::bytes_tree: the B+tree engine with byte-string keys and values.
#include "keel/bytes_tree.h"
#include "keel/detail/open_named.h"

namespace keel {

namespace {
constexpr detail::tree_shape kShape{0, 0};
type_desc bytes_type() { return type_desc::bytes(); }

bool take_first(void* ctx, std::string_view k, std::string_view v) {
  static_cast<std::optional<bytes_tree::entry>*>(ctx)->emplace(std::string(k), std::string(v));
  return false;
}
}  // namespace

bytes_tree bytes_tree::open(store& db, std::string_view name) {
  return bytes_tree(db, detail::open_named(
                            db, name,
                            [&](const read_view& v) {
                              return detail::tree_find(v, name, kind::bytes_tree_map, kShape, bytes_type(), bytes_type());
                            },
                            [&](write_txn& tx) { return open(db, tx, name).root_; }));
}

bytes_tree bytes_tree::open(store& db, write_txn& tx, std::string_view name) {
  return bytes_tree(db, detail::tree_open(tx, name, kind::bytes_tree_map, kShape, bytes_type(), bytes_type()));
}

std::optional<std::string> bytes_tree::get(std::string_view key) const {
  return db_->read([&](const read_view& v) { return get(v, key); });
}
std::optional<std::string> bytes_tree::get(const read_view& v, std::string_view key) const {
  std::string out;
  if (!detail::tree_get(v, root_, key, {nullptr, &out})) return std::nullopt;
  return out;
}
std::uint64_t bytes_tree::size() const {
  return db_->read([&](const read_view& v) { return detail::tree_size(v, root_); });
}

std::optional<bytes_tree::entry> bytes_tree::one(const detail::tree_range& r) const {
  std::optional<entry> got;
  detail::tree_scan(*db_, root_, r, &take_first, &got);
  return got;
}
std::optional<bytes_tree::entry> bytes_tree::first() const { return one({}); }
std::optional<bytes_tree::entry> bytes_tree::last() const { return one({{}, {}, true, false}); }
std::optional<bytes_tree::entry> bytes_tree::lower_bound(std::string_view key) const {
  return one({{key, true}, {}, false, false});
}
std::optional<bytes_tree::entry> bytes_tree::upper_bound(std::string_view key) const {
  return one({{key, true}, {}, false, true});
}

void bytes_tree::scan(const detail::tree_range& r, detail::tree_visit f, void* ctx) const {
  detail::tree_scan(*db_, root_, r, f, ctx);
}
void bytes_tree::scan(write_txn& tx, const detail::tree_range& r, detail::tree_visit f, void* ctx) const {
  detail::tree_scan(tx, root_, r, f, ctx);
}

detail::tree_range bytes_tree::prefix_range(std::string_view prefix, std::string& hi) {
  detail::tree_range r;
  r.lo = {prefix, true};
  // The least string above every string with the prefix: drop trailing 0xff
  // bytes, then add one to the last; none when the prefix is all 0xff.
  hi.assign(prefix);
  while (!hi.empty() && static_cast<unsigned char>(hi.back()) == 0xff) hi.pop_back();
  if (!hi.empty()) {
    hi.back() = static_cast<char>(static_cast<unsigned char>(hi.back()) + 1);
    r.hi = {hi, true};
  }
  return r;
}

std::optional<std::string> bytes_tree::get(write_txn& tx, std::string_view key) const {
  std::string out;
  if (!detail::tree_get(tx, root_, key, {nullptr, &out})) return std::nullopt;
  return out;
}
std::uint64_t bytes_tree::size(write_txn& tx) const { return detail::tree_size(tx, root_); }
bool bytes_tree::insert(write_txn& tx, std::string_view key, std::string_view value) {
  return detail::tree_put(tx, root_, key, value, detail::put_mode::insert);
}
bool bytes_tree::put(write_txn& tx, std::string_view key, std::string_view value) {
  return detail::tree_put(tx, root_, key, value, detail::put_mode::assign);
}
void bytes_tree::append(write_txn& tx, std::string_view key, std::string_view value) {
  detail::tree_put(tx, root_, key, value, detail::put_mode::append);
}
bool bytes_tree::erase(write_txn& tx, std::string_view key) { return detail::tree_erase(tx, root_, key); }
std::uint64_t bytes_tree::erase_range(write_txn& tx, std::string_view lo, std::string_view hi) {
  return detail::tree_erase_range(tx, root_, {lo, true}, {hi, true});
}
void bytes_tree::clear(write_txn& tx) { detail::tree_clear(tx, root_); }

}  // namespace keel
