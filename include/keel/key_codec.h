// keel::key_codec<K>: how a tree_map key becomes bytes whose memcmp order is
// the key's order. Trees store and compare only these bytes, so a tree built
// by one process is ordered the same in every other.
//
// Provided: unsigned and signed integers (big-endian, sign bit flipped),
// bool, enums (by their underlying type), std::array of bytes/chars (as is),
// std::array of any codec type (signed chars with the sign bit flipped, so
// arrays order as their operator< says), std::pair and std::tuple of codec types
// (concatenated, so (symbol, time) orders by symbol, then time), and
// std::chrono::duration / time_point (by their integer count). For your own
// struct, specialize:
//
//   template <> struct keel::key_codec<my_key> {
//     static constexpr std::size_t size = ...;               // bytes, <= 1024
//     static void encode(const my_key&, unsigned char* out);  // writes size bytes
//     static my_key decode(const unsigned char* in);
//   };
//
// REQUIRES of a specialization: a < b exactly when encode(a) memcmp-precedes
// encode(b), and decode(encode(k)) == k.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

namespace keel {

template <class K, class = void>
struct key_codec;  // no codec: the type cannot be a tree key

namespace detail {
template <class U>
inline U to_be(U v) {  // big-endian hosts are refused by the format (src/file/format.h)
  if constexpr (sizeof(U) == 1)
    return v;
  else if constexpr (sizeof(U) == 2)
    return __builtin_bswap16(v);
  else if constexpr (sizeof(U) == 4)
    return __builtin_bswap32(v);
  else
    return __builtin_bswap64(v);
}
template <class U>
inline void store_be(U v, unsigned char* out) {
  v = to_be(v);
  std::memcpy(out, &v, sizeof v);
}
template <class U>
inline U load_be(const unsigned char* in) {
  U v;
  std::memcpy(&v, in, sizeof v);
  return to_be(v);
}
// Bytes whose memcmp order is their value order: copied as they are.
template <class T>
inline constexpr bool is_byte_like = std::is_same_v<T, unsigned char> || std::is_same_v<T, std::byte> ||
                                     std::is_same_v<T, char8_t> || (std::is_same_v<T, char> && !std::is_signed_v<char>);
}  // namespace detail

template <class T>
struct key_codec<T, std::enable_if_t<std::is_integral_v<T>>> {
  using U = std::make_unsigned_t<std::conditional_t<std::is_same_v<T, bool>, unsigned char, T>>;
  static constexpr std::size_t size = sizeof(T);
  static constexpr U flip = std::is_signed_v<T> ? static_cast<U>(U{1} << (8 * sizeof(T) - 1)) : U{0};
  static void encode(const T& v, unsigned char* out) { detail::store_be<U>(static_cast<U>(v) ^ flip, out); }
  static T decode(const unsigned char* in) { return static_cast<T>(detail::load_be<U>(in) ^ flip); }
};

template <class T>
struct key_codec<T, std::enable_if_t<std::is_enum_v<T>>> {
  using B = key_codec<std::underlying_type_t<T>>;
  static constexpr std::size_t size = B::size;
  static void encode(const T& v, unsigned char* out) { B::encode(static_cast<std::underlying_type_t<T>>(v), out); }
  static T decode(const unsigned char* in) { return static_cast<T>(B::decode(in)); }
};

template <class T, std::size_t N>
struct key_codec<std::array<T, N>> {
  using E = key_codec<T>;
  static constexpr std::size_t size = N * E::size;
  static void encode(const std::array<T, N>& v, unsigned char* out) {
    if constexpr (detail::is_byte_like<T>)
      std::memcpy(out, v.data(), N);
    else
      for (std::size_t i = 0; i < N; ++i) E::encode(v[i], out + i * E::size);
  }
  static std::array<T, N> decode(const unsigned char* in) {
    std::array<T, N> v;
    if constexpr (detail::is_byte_like<T>)
      std::memcpy(v.data(), in, N);
    else
      for (std::size_t i = 0; i < N; ++i) v[i] = E::decode(in + i * E::size);
    return v;
  }
};
template <>
struct key_codec<std::byte> {
  static constexpr std::size_t size = 1;
  static void encode(const std::byte& v, unsigned char* out) { *out = static_cast<unsigned char>(v); }
  static std::byte decode(const unsigned char* in) { return static_cast<std::byte>(*in); }
};

template <class... Ts>
struct key_codec<std::tuple<Ts...>> {
  static constexpr std::size_t size = (key_codec<Ts>::size + ... + 0);
  static void encode(const std::tuple<Ts...>& v, unsigned char* out) {
    std::apply([&](const Ts&... xs) { ((key_codec<Ts>::encode(xs, out), out += key_codec<Ts>::size), ...); }, v);
  }
  static std::tuple<Ts...> decode(const unsigned char* in) { return std::tuple<Ts...>{take<Ts>(in)...}; }

 private:
  template <class T>
  static T take(const unsigned char*& in) {  // braced init: left to right
    T v = key_codec<T>::decode(in);
    in += key_codec<T>::size;
    return v;
  }
};

template <class A, class B>
struct key_codec<std::pair<A, B>> {
  static constexpr std::size_t size = key_codec<A>::size + key_codec<B>::size;
  static void encode(const std::pair<A, B>& v, unsigned char* out) {
    key_codec<A>::encode(v.first, out);
    key_codec<B>::encode(v.second, out + key_codec<A>::size);
  }
  static std::pair<A, B> decode(const unsigned char* in) {
    return {key_codec<A>::decode(in), key_codec<B>::decode(in + key_codec<A>::size)};
  }
};

template <class Rep, class Period>
struct key_codec<std::chrono::duration<Rep, Period>> {
  using D = std::chrono::duration<Rep, Period>;
  static constexpr std::size_t size = key_codec<Rep>::size;
  static void encode(const D& v, unsigned char* out) { key_codec<Rep>::encode(v.count(), out); }
  static D decode(const unsigned char* in) { return D{key_codec<Rep>::decode(in)}; }
};

template <class Clock, class Dur>
struct key_codec<std::chrono::time_point<Clock, Dur>> {
  using P = std::chrono::time_point<Clock, Dur>;
  static constexpr std::size_t size = key_codec<Dur>::size;
  static void encode(const P& v, unsigned char* out) { key_codec<Dur>::encode(v.time_since_epoch(), out); }
  static P decode(const unsigned char* in) { return P{key_codec<Dur>::decode(in)}; }
};

// A type with a codec can be a tree key.
template <class K>
concept tree_key = requires(const K& k, unsigned char* out, const unsigned char* in) {
  { key_codec<K>::size } -> std::convertible_to<std::size_t>;
  key_codec<K>::encode(k, out);
  { key_codec<K>::decode(in) } -> std::convertible_to<K>;
};

}  // namespace keel
