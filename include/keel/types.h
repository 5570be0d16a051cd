// Typed offsets and type descriptors: how structures refer to each other
// inside the file and how the catalog records what a name holds.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>

namespace keel {

// A reference to a T stored in the file: its byte offset from the start of
// the file (0 = null). The same bytes mean the same thing in every process,
// wherever the file is mapped. Trivially copyable, so it can itself be stored.
template <class T>
struct ref {
  std::uint64_t off = 0;
  explicit operator bool() const noexcept { return off != 0; }
  friend bool operator==(ref, ref) = default;
};

// What a catalog name holds. Values are part of the file format.
enum class kind : std::uint16_t {
  raw = 1,  // a root offset the application manages itself
  hash_map = 2,
  bytes_hash_map = 3,
  tree_map = 4,
  bytes_tree_map = 5,
};

// Describes a key or value type, so that opening a name with other types is
// errc::type_mismatch rather than a reinterpretation of bytes. 16 bytes in
// the file (docs/FORMAT.md). Specialize keel::type_name<T> to give a struct a
// name that survives renames; by default the compiler's name of T is used.
template <class T>
struct type_name {
  static std::string_view get() { return typeid(T).name(); }
};

std::uint64_t fingerprint(std::string_view type_name) noexcept;

struct type_desc {
  std::uint16_t code = 0;  // 0 none, 1-4 u8..u64, 5-8 i8..i64, 9 f32, 10 f64, 11 bytes, 12 fixed
  std::uint16_t align = 0;
  std::uint32_t size = 0;
  std::uint64_t fp = 0;
  friend bool operator==(const type_desc&, const type_desc&) = default;

  static type_desc none() { return {}; }
  static type_desc bytes() { return {11, 1, 0, 0}; }
  template <class T>
  static type_desc of() {
    static_assert(std::is_trivially_copyable_v<T>, "Keel stores trivially copyable types only");
    type_desc d{12, static_cast<std::uint16_t>(alignof(T)), static_cast<std::uint32_t>(sizeof(T)), 0};
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      const int lg = sizeof(T) == 1 ? 0 : sizeof(T) == 2 ? 1 : sizeof(T) == 4 ? 2 : 3;
      d.code = static_cast<std::uint16_t>((std::is_signed_v<T> ? 5 : 1) + lg);
    } else if constexpr (std::is_same_v<T, float>) {
      d.code = 9;
    } else if constexpr (std::is_same_v<T, double>) {
      d.code = 10;
    } else {
      d.fp = fingerprint(type_name<T>::get());
    }
    return d;
  }
  std::string describe() const;
};

// One name in the root catalog.
struct catalog_entry {
  std::string name;
  keel::kind kind{};
  type_desc key;
  type_desc value;
  std::uint64_t root = 0;  // offset of the structure's root block, 0 = none yet
  std::uint64_t aux = 0;   // a word the structure may use (e.g. an entry count)
};

// The class name of a kind: "hash_map", "bytes_map", "tree_map", "bytes_tree", "raw".
std::string kind_name(kind k);
// Throws errc::type_mismatch, naming what e holds and what was asked for,
// unless e is a k<key, value>. path names the store in the message.
void check_type(const catalog_entry& e, const std::string& path, kind k, type_desc key, type_desc value);

}  // namespace keel
