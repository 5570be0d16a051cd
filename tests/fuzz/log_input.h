// The input format of fuzz_log_replay, shared by the target (decoder) and
// fuzz_make_seeds (encoder of real logs). docs/FORMAT.md has the log and
// journal layouts this produces.
//
//   u8 mode   bits 0-1: 0 raw: the rest of the input is the whole -log file
//                       1 header: a valid log header, then the rest verbatim
//                       2,3 structured: a valid header, then records decoded
//                         as below, with correct checksums unless asked
//             bit 2: same boot: the control page is made valid for this boot
//                    (applied LSN = checkpoint LSN at the log header), so the
//                    dead-writer path recovers; otherwise the full (new boot)
//                    recovery runs
//             bit 3: structured journal entries come first (below)
//             bit 4: with bit 2, the seqlock is left odd (a half-applied commit)
//             bit 5: the last record is torn (cut in the middle)
//
// Structured journal (bit 3): u8 count (mod 8), then per entry
//   u8 c      bit 0: page = arena page (u16 index mod pages) else raw u64
//             bit 1: epoch = raw u64, else the image's checkpoint LSN
//             bit 2: wrong checksum
//   [page], [epoch], u64 line mask (0 -> 1), then 64 bytes per set bit
//
// Structured records, until the input ends (at most kMaxRecords):
//   u8 c      bits 0-1: LSN 0 next, 1 previous (a repeat), 2 a gap of
//                       1 + (u8 mod 3), 3 raw u64
//             bit 2: add a range setting the meta page's commit count to the
//                    LSN (what every real record carries)
//             bit 3: header's payload length off by (u8 mod 17) - 8
//             bit 4: bad header magic;  bit 5: range count from a u8
//             bit 6: trailer LSN + 1;   bit 7: wrong trailer checksum
//   u8 n      ranges (mod 64)
//   per range:
//     u8 r    bits 0-1: offset 0 meta page + (u16 mod 4096), 1 inside the
//                       file (u32 mod size), 2 raw u64, 3 file end - (u16 mod 4096)
//             bits 2-3: length 0 u8 mod 65, 1 u16 mod 4097, 2 eight, 3 raw u32
//             bit 5: copy range (when bit 6 is clear)
//             bit 6: zero-fill range (no bytes follow)
//             bits 5 and 6: a packed run instead (below)
//             bit 7: flags from a u32
//             a copy range (flags 2) is followed by u8 s whose bits 0-1
//             choose the source offset as r's bits 0-1 choose the
//             destination, and no bytes
//     then the range's bytes from the input (at most 8 KiB emitted; the
//     input's end pads with 0xA5)
//   a packed run: u8 m, then (m mod 8) sub-ranges, each a u8 like r above
//     (bits 0-3 offset and length, at most 8 KiB, bit 4 zero fill, bit 5 copy with its
//     source from a u8 s, else bytes from the input), encoded by Keel's own
//     encoder (redo::encode, so one or more runs); then u8 d: when bit 0 is
//     set, the byte at u16 mod the runs' size is XORed with u8 x (a damaged
//     run whose checksums still match)
#pragma once

#include <cstddef>

namespace keel_fuzz::log_input {

inline constexpr int kMaxRecords = 32;
inline constexpr std::size_t kMaxBody = 8192;

enum mode_bits : unsigned {
  kRaw = 0,
  kHeader = 1,
  kStructured = 2,
  kSameBoot = 4,
  kJournal = 8,
  kHalfApplied = 16,
  kTornTail = 32,
};

}  // namespace keel_fuzz::log_input
