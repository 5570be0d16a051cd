// Small valid stores for seeds and for fuzz_log_replay's base image.
#pragma once

#include <string>

#include "fuzz_common.h"

namespace keel_fuzz {

// Creates the store `path` holding every structure kind: a hash map (left
// in the middle of a resize), a bytes map with inline and out-of-line
// values, a typed B+tree of two leaves, a byte-string tree with a blob, and
// a raw block. Closed cleanly.
void build_sample(const std::string& path);

// The image fuzz_log_replay replays logs over: tests/fuzz/log_replay_base.img
// (written by fuzz_make_seeds, so that the seeds' records match it), else a
// fresh build_sample (random file id: only raw or structured inputs reach
// its records then).
image log_replay_base();
std::string log_replay_base_path();

}  // namespace keel_fuzz
