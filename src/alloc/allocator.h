// The persistent allocator: size-class free lists over a bump cursor, all
// of it in the meta page and changed only through the write transaction.
#pragma once

#include <cstdint>

#include "store/store_impl.h"

namespace keel::allocator {

// Size class of an n-byte request (n > 0) and the bytes a block of it spans.
int class_of(std::uint64_t n) noexcept;
std::uint64_t class_bytes(int cls) noexcept;

// Where a block of class_bytes(cls) bytes goes when no free block serves
// it: at the cursor, moved to the next page when a small block would cross
// one or a large block would not start one.
std::uint64_t bump_at(std::uint64_t cursor, std::uint64_t bytes) noexcept;

std::uint64_t allocate(write_txn::impl& t, std::uint64_t n);
// Frees a block. A pinned block goes to limbo instead of its free list.
void release(write_txn::impl& t, std::uint64_t off, std::uint64_t n);

// Pins the live n-byte block at off: when freed, it is not reused before a
// checkpoint covers the freeing commit, so records until then may copy from
// its bytes (write_txn::copy_unpublished). True if it is pinned (already or
// now); false when limbo has no free entry. Throws errc::invalid_argument for
// a span that is not a block.
bool pin(write_txn::impl& t, std::uint64_t off, std::uint64_t n);

}  // namespace keel::allocator
