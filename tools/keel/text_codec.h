// The text form of keys and values in `keel dump` and `keel load`
// (docs/CLI.md, "Dump format"): one JSON object per line, or CSV.
//
// Fields are in their native form here: integers and floats as the host's
// little-endian bytes, byte strings as themselves, fixed-size types as
// their stored bytes. (Typed trees store integer keys in key_codec order;
// structure.cc converts.)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "keel/types.h"

namespace keel::cli {

enum class text_format { jsonl, csv };

// "u64", "i32", "f64", "bytes", "fixed:SIZE:ALIGN:0xFINGERPRINT".
std::string type_spec(const type_desc& t);
// Accepts type_spec()'s output, and fixed:SIZE[:ALIGN[:FP]] where FP is
// 0x-hex or a C++ type name (hashed as keel::fingerprint does).
// Throws failure(kUsage) naming `option`.
type_desc parse_type_spec(std::string_view spec, std::string_view option);
// Bytes one field of this type takes in a fixed-size slot (0 for bytes).
std::uint32_t fixed_size(const type_desc& t);

// Appends one field.
void append_json(std::string& out, const type_desc& t, std::string_view field);
void append_csv(std::string& out, const type_desc& t, std::string_view field);

// A field as read from a line, before it is checked against its type.
struct token {
  enum kind_t { string, number, literal } kind = string;  // literal: true/false/null
  std::string text;                                       // decoded string bytes, or the number's characters
};
// Converts a token to the field bytes of type t; throws std::invalid_argument
// with the reason (the caller adds the line number).
std::string field_from_token(const type_desc& t, const token& tok);

// Parses one JSONL line {"key": ..., "value": ...} (members in any order,
// nothing else). Throws std::invalid_argument with the reason.
void parse_json_line(std::string_view line, token& key, token& value);

// Reads one CSV record of exactly two fields from `in` (RFC 4180: quoted
// fields may hold commas, doubled quotes and line breaks). Returns false at
// end of input; `lines` is advanced by the physical lines consumed. Throws
// std::invalid_argument with the reason.
class line_source;
bool read_csv_record(line_source& in, token& key, token& value, std::uint64_t& lines);

// Buffered line reader over a file descriptor (stdin or a file).
class line_source {
 public:
  explicit line_source(int fd) : fd_(fd) {}
  // Next line without its '\n' (a '\r' before it is kept); false at end.
  bool next(std::string& line);
  std::uint64_t bytes_read() const noexcept { return consumed_; }

 private:
  int fd_;
  std::string buf_;
  std::size_t pos_ = 0;
  std::uint64_t consumed_ = 0;
  bool eof_ = false;
};

}  // namespace keel::cli

namespace keel::cli {
// s as a JSON string literal (control characters escaped, other bytes as is).
std::string json_quote(std::string_view s);
}  // namespace keel::cli
