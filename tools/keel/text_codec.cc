#include "text_codec.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "common.h"

namespace keel::cli {

namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr std::string_view kHexPrefix = "hex:";

std::string to_hex(std::string_view b) {
  std::string s;
  s.reserve(b.size() * 2);
  for (unsigned char c : b) {
    s += kHex[c >> 4];
    s += kHex[c & 15];
  }
  return s;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string from_hex(std::string_view s) {
  if (s.size() % 2 != 0) throw std::invalid_argument("odd number of hex digits");
  std::string b(s.size() / 2, '\0');
  for (std::size_t i = 0; i < b.size(); ++i) {
    const int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      throw std::invalid_argument(::fmt::format("'{}' is not a hex digit", hi < 0 ? s[2 * i] : s[2 * i + 1]));
    b[i] = static_cast<char>(hi << 4 | lo);
  }
  return b;
}

// Well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  while (i < s.size()) {
    const unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
      n = 1;
    else if (c == 0xE0)
      n = 2, lo = 0xA0;
    else if (c == 0xED)
      n = 2, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF)
      n = 2;
    else if (c == 0xF0)
      n = 3, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
      n = 3;
    else if (c == 0xF4)
      n = 3, hi = 0x8F;
    else
      return false;
    for (int k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const unsigned d = p[i + k];
      if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF)) return false;
    }
    i += n + 1;
  }
  return true;
}

// A byte string is written as text when it is well-formed UTF-8 without
// control characters other than tab, LF and CR, and does not start with
// "hex:"; otherwise as "hex:" and two lowercase hex digits per byte.
bool printable(std::string_view s) {
  if (s.substr(0, kHexPrefix.size()) == kHexPrefix) return false;
  for (unsigned char c : s)
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) return false;
  return valid_utf8(s);
}

bool is_int(const type_desc& t) {
  return t.code >= 1 && t.code <= 8;
}
bool is_signed(const type_desc& t) {
  return t.code >= 5 && t.code <= 8;
}
unsigned int_bytes(const type_desc& t) {
  return 1u << ((t.code - 1) % 4);
}

std::string number_text(const type_desc& t, std::string_view f) {
  if (is_int(t)) {
    const unsigned n = int_bytes(t);
    std::uint64_t u = 0;
    std::memcpy(&u, f.data(), n);  // little-endian host (format.h)
    if (is_signed(t)) {
      const unsigned bits = 8 * n;
      std::int64_t v = static_cast<std::int64_t>(u << (64 - bits)) >> (64 - bits);
      return ::fmt::format("{}", v);
    }
    return ::fmt::format("{}", u);
  }
  double d;
  if (t.code == 9) {
    float x;
    std::memcpy(&x, f.data(), 4);
    if (std::isfinite(x)) return ::fmt::format("{}", x);
    d = x;
  } else {
    std::memcpy(&d, f.data(), 8);
    if (std::isfinite(d)) return ::fmt::format("{}", d);
  }
  return std::isnan(d) ? "nan" : d > 0 ? "inf" : "-inf";
}

void json_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f)
          out += ::fmt::format("\\u{:04x}", c);
        else
          out += static_cast<char>(c);
    }
  }
  out += '"';
}

void csv_field(std::string& out, std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos && (s.empty() || (s.front() != ' ' && s.back() != ' '))) {
    out += s;
    return;
  }
  out += '"';
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

std::string field_text(const type_desc& t, std::string_view f, bool& is_text) {
  is_text = true;
  if (t.code == 11) {
    if (printable(f)) return std::string(f);
    return std::string(kHexPrefix) + to_hex(f);
  }
  if (t.code == 12) return to_hex(f);
  is_text = false;
  return number_text(t, f);
}

template <class I>
std::string int_field(std::string_view text, const type_desc& t) {
  I v{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc::result_out_of_range)
    throw std::invalid_argument(::fmt::format("{} is out of range for {}", text, type_spec(t)));
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty())
    throw std::invalid_argument(::fmt::format("'{}' is not an integer", text));
  if constexpr (std::is_signed_v<I>) {
    const unsigned bits = 8 * int_bytes(t);
    if (bits < 64 && (v < -(I{1} << (bits - 1)) || v >= (I{1} << (bits - 1))))
      throw std::invalid_argument(::fmt::format("{} is out of range for {}", text, type_spec(t)));
  } else {
    const unsigned bits = 8 * int_bytes(t);
    if (bits < 64 && v >= (I{1} << bits))
      throw std::invalid_argument(::fmt::format("{} is out of range for {}", text, type_spec(t)));
  }
  std::string out(int_bytes(t), '\0');
  std::memcpy(out.data(), &v, out.size());
  return out;
}

}  // namespace

std::string type_spec(const type_desc& t) {
  static constexpr const char* names[] = {"none", "u8",  "u16", "u32", "u64", "i8",
                                          "i16",  "i32", "i64", "f32", "f64", "bytes"};
  if (t.code < 12) return names[t.code];
  if (t.code == 12) return ::fmt::format("fixed:{}:{}:{:#x}", t.size, t.align, t.fp);
  return ::fmt::format("code{}", t.code);
}

type_desc parse_type_spec(std::string_view spec, std::string_view option) {
  static constexpr std::pair<std::string_view, std::uint16_t> simple[] = {
      {"u8", 1},  {"u16", 2}, {"u32", 3}, {"u64", 4},  {"i8", 5},    {"i16", 6},
      {"i32", 7}, {"i64", 8}, {"f32", 9}, {"f64", 10}, {"bytes", 11}};
  for (auto [name, code] : simple) {
    if (spec != name) continue;
    if (code == 11) return type_desc::bytes();
    const std::uint32_t size = code == 9 ? 4 : code == 10 ? 8 : 1u << ((code - 1) % 4);
    return type_desc{code, static_cast<std::uint16_t>(size), size, 0};
  }
  auto bad = [&](std::string_view why) {
    return failure(::fmt::format("{}: '{}' {} (types: u8 u16 u32 u64 i8 i16 i32 i64 f32 f64 bytes "
                                 "fixed:SIZE[:ALIGN[:FINGERPRINT]])",
                                 option, spec, why),
                   kUsage);
  };
  if (spec.substr(0, 6) != "fixed:") throw bad("is not a type");
  std::string_view rest = spec.substr(6);
  auto next = [&]() {
    const auto c = rest.find(':');
    std::string_view part = rest.substr(0, c);
    rest = c == std::string_view::npos ? std::string_view{} : rest.substr(c + 1);
    return part;
  };
  auto number = [&](std::string_view s, std::uint64_t max, std::string_view what) {
    std::uint64_t v = 0;
    int base = 10;
    if (s.substr(0, 2) == "0x") s.remove_prefix(2), base = 16;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
    if (ec != std::errc{} || end != s.data() + s.size() || s.empty() || v > max)
      throw bad(::fmt::format("has a bad {}", what));
    return v;
  };
  type_desc d{12, 1, 0, 0};
  d.size = static_cast<std::uint32_t>(number(next(), 4000, "size"));
  if (d.size == 0) throw bad("has size 0");
  if (!rest.empty()) {
    d.align = static_cast<std::uint16_t>(number(next(), 4096, "alignment"));
    if (d.align == 0 || (d.align & (d.align - 1)) != 0) throw bad("has an alignment that is not a power of two");
  }
  if (!rest.empty()) {
    const std::string_view fp = rest;
    if (fp.substr(0, 2) == "0x")
      d.fp = number(fp, ~std::uint64_t{0}, "fingerprint");
    else
      d.fp = fingerprint(fp);
  }
  return d;
}

std::uint32_t fixed_size(const type_desc& t) {
  return t.code == 11 ? 0 : t.size;
}

void append_json(std::string& out, const type_desc& t, std::string_view f) {
  bool text;
  const std::string s = field_text(t, f, text);
  if (text || s == "nan" || s == "inf" || s == "-inf")
    json_string(out, s);
  else
    out += s;
}

void append_csv(std::string& out, const type_desc& t, std::string_view f) {
  bool text;
  csv_field(out, field_text(t, f, text));
}

std::string field_from_token(const type_desc& t, const token& tok) {
  if (tok.kind == token::literal)
    throw std::invalid_argument(::fmt::format("'{}' is not a {}", tok.text, type_spec(t)));
  const std::string_view s = tok.text;
  if (t.code == 11) {
    if (tok.kind != token::string) throw std::invalid_argument("a byte string must be a JSON string");
    if (s.substr(0, kHexPrefix.size()) == kHexPrefix) return from_hex(s.substr(kHexPrefix.size()));
    return tok.text;
  }
  if (t.code == 12) {
    std::string_view h = s;
    if (h.substr(0, kHexPrefix.size()) == kHexPrefix) h.remove_prefix(kHexPrefix.size());
    if (h.size() != 2 * std::size_t{t.size})
      throw std::invalid_argument(
          ::fmt::format("a {}-byte value needs {} hex digits, got {}", t.size, 2 * std::size_t{t.size}, h.size()));
    return from_hex(h);
  }
  if (is_int(t)) {
    if (tok.kind == token::string && tok.text.empty())
      throw std::invalid_argument("empty field where an integer belongs");
    return is_signed(t) ? int_field<std::int64_t>(s, t) : int_field<std::uint64_t>(s, t);
  }
  // f32 / f64
  double d;
  if (s == "nan" || s == "NaN")
    d = std::numeric_limits<double>::quiet_NaN();
  else if (s == "inf" || s == "Infinity")
    d = std::numeric_limits<double>::infinity();
  else if (s == "-inf" || s == "-Infinity")
    d = -std::numeric_limits<double>::infinity();
  else {
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
    if (ec == std::errc::result_out_of_range && end == s.data() + s.size())
      throw std::invalid_argument(::fmt::format("{} is out of range for {}", s, type_spec(t)));
    if (ec != std::errc{} || end != s.data() + s.size() || s.empty())
      throw std::invalid_argument(::fmt::format("'{}' is not a number", s));
  }
  std::string out(t.code == 9 ? 4 : 8, '\0');
  if (t.code == 9) {
    if (std::isfinite(d) && std::fabs(d) > std::numeric_limits<float>::max())
      throw std::invalid_argument(::fmt::format("{} is out of range for f32", s));
    const float f = static_cast<float>(d);
    std::memcpy(out.data(), &f, 4);
  } else {
    std::memcpy(out.data(), &d, 8);
  }
  return out;
}

// ---------------------------------------------------------------- JSON lines

namespace {

struct json_reader {
  std::string_view s;
  std::size_t i = 0;

  [[noreturn]] void fail(const std::string& why) const {
    throw std::invalid_argument(::fmt::format("column {}: {}", i + 1, why));
  }
  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) ++i;
  }
  bool eat(char c) {
    ws();
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  void expect(char c, const char* what) {
    if (!eat(c))
      fail(i < s.size() ? ::fmt::format("expected {}, found '{}'", what, s[i])
                        : ::fmt::format("expected {}, found the end of the line", what));
  }
  static void put_utf8(std::string& o, std::uint32_t cp) {
    if (cp < 0x80) {
      o += static_cast<char>(cp);
    } else if (cp < 0x800) {
      o += static_cast<char>(0xC0 | cp >> 6);
      o += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      o += static_cast<char>(0xE0 | cp >> 12);
      o += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
      o += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      o += static_cast<char>(0xF0 | cp >> 18);
      o += static_cast<char>(0x80 | (cp >> 12 & 0x3F));
      o += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
      o += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  std::uint32_t hex4() {
    if (i + 4 > s.size()) fail("truncated \\u escape");
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const int d = hex_digit(s[i + k]);
      if (d < 0) fail("bad \\u escape");
      v = v << 4 | static_cast<std::uint32_t>(d);
    }
    i += 4;
    return v;
  }
  std::string string() {  // at the opening quote
    ++i;
    std::string o;
    for (;;) {
      if (i >= s.size()) fail("unterminated string");
      const unsigned char c = static_cast<unsigned char>(s[i++]);
      if (c == '"') return o;
      if (c < 0x20) fail("control character inside a string (escape it)");
      if (c != '\\') {
        o += static_cast<char>(c);
        continue;
      }
      if (i >= s.size()) fail("unterminated string");
      const char e = s[i++];
      switch (e) {
        case '"':
          o += '"';
          break;
        case '\\':
          o += '\\';
          break;
        case '/':
          o += '/';
          break;
        case 'b':
          o += '\b';
          break;
        case 'f':
          o += '\f';
          break;
        case 'n':
          o += '\n';
          break;
        case 'r':
          o += '\r';
          break;
        case 't':
          o += '\t';
          break;
        case 'u': {
          std::uint32_t cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (i + 2 > s.size() || s[i] != '\\' || s[i + 1] != 'u') fail("unpaired surrogate in \\u escape");
            i += 2;
            const std::uint32_t lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("unpaired surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail("unpaired surrogate in \\u escape");
          }
          put_utf8(o, cp);
          break;
        }
        default:
          fail(::fmt::format("unknown escape '\\{}'", e));
      }
    }
  }
  token value() {
    ws();
    if (i >= s.size()) fail("expected a value, found the end of the line");
    token t;
    if (s[i] == '"') {
      t.kind = token::string;
      t.text = string();
      return t;
    }
    const std::size_t start = i;
    if (s[i] == '-' || (s[i] >= '0' && s[i] <= '9')) {
      t.kind = token::number;
      while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || std::strchr("+-.eE", s[i]))) ++i;
      t.text = std::string(s.substr(start, i - start));
      return t;
    }
    while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
    const std::string_view word = s.substr(start, i - start);
    if (word == "true" || word == "false" || word == "null") {
      t.kind = token::literal;
      t.text = std::string(word);
      return t;
    }
    i = start;
    if (s[i] == '{' || s[i] == '[') fail("objects and arrays are not field values");
    fail(::fmt::format("unexpected '{}'", s[i]));
  }
};

}  // namespace

void parse_json_line(std::string_view line, token& key, token& value) {
  json_reader r{line};
  r.expect('{', "'{' (one JSON object per line)");
  bool have_key = false, have_value = false;
  if (!r.eat('}')) {
    for (;;) {
      r.ws();
      if (r.i >= line.size() || line[r.i] != '"') r.expect('"', "a member name in quotes");
      const std::string name = r.string();
      r.expect(':', "':'");
      if (name == "key") {
        if (have_key) r.fail("\"key\" appears twice");
        key = r.value();
        have_key = true;
      } else if (name == "value") {
        if (have_value) r.fail("\"value\" appears twice");
        value = r.value();
        have_value = true;
      } else {
        r.fail(::fmt::format("unknown member \"{}\" (only \"key\" and \"value\")", name));
      }
      if (r.eat(',')) continue;
      r.expect('}', "',' or '}'");
      break;
    }
  }
  r.ws();
  if (r.i != line.size()) r.fail("text after the object");
  if (!have_key) throw std::invalid_argument("missing \"key\"");
  if (!have_value) throw std::invalid_argument("missing \"value\"");
}

// ---------------------------------------------------------------- CSV

bool line_source::next(std::string& line) {
  line.clear();
  for (;;) {
    const std::size_t nl = buf_.find('\n', pos_);
    if (nl != std::string::npos) {
      line.append(buf_, pos_, nl - pos_);
      consumed_ += nl + 1 - pos_;
      pos_ = nl + 1;
      break;
    }
    line.append(buf_, pos_, std::string::npos);
    consumed_ += buf_.size() - pos_;
    buf_.clear();
    pos_ = 0;
    if (eof_) {
      if (line.empty()) return false;
      break;
    }
    buf_.resize(1 << 16);
    ssize_t n;
    do n = ::read(fd_, buf_.data(), buf_.size());
    while (n < 0 && errno == EINTR);
    if (n < 0) throw failure(std::string("cannot read the input: ") + std::strerror(errno));
    buf_.resize(static_cast<std::size_t>(n));
    if (n == 0) eof_ = true;
  }
  return true;
}

bool read_csv_record(line_source& in, token& key, token& value, std::uint64_t& lines) {
  std::string line;  // with a trailing '\r' if the input has CRLF line ends
  if (!in.next(line)) return false;
  ++lines;
  // The record ends at the line end; a '\r' before it belongs to the line
  // end, except inside a quoted field, where it is content.
  auto end = [&] { return line.size() - (!line.empty() && line.back() == '\r' ? 1 : 0); };
  token* fields[2] = {&key, &value};
  int n = 0;
  std::size_t i = 0;
  for (;;) {
    if (n == 2) throw std::invalid_argument("more than two fields (key,value); quote fields that hold commas");
    token& t = *fields[n++];
    t.kind = token::string;
    t.text.clear();
    if (i < end() && line[i] == '"') {
      ++i;
      for (;;) {
        if (i >= line.size()) {  // a line break inside the quotes
          std::string more;
          if (!in.next(more)) throw std::invalid_argument("unterminated quoted field at the end of the input");
          ++lines;
          t.text += '\n';
          line = std::move(more);
          i = 0;
          continue;
        }
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            t.text += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        t.text += line[i++];
      }
      if (i < end() && line[i] != ',')
        throw std::invalid_argument("text after a closing quote (double a quote inside a quoted field)");
    } else {
      const std::size_t e = end();
      const std::size_t c = std::min(line.find(',', i), e);
      t.text = line.substr(i, c - i);
      if (t.text.find('"') != std::string::npos)
        throw std::invalid_argument("a quote inside an unquoted field (quote the whole field)");
      i = c;
    }
    if (i >= end()) break;
    ++i;  // the comma
  }
  if (n != 2) throw std::invalid_argument("one field where two belong (key,value)");
  return true;
}

}  // namespace keel::cli

namespace keel::cli {
std::string json_quote(std::string_view s) {
  std::string out;
  json_string(out, s);
  return out;
}
}  // namespace keel::cli
