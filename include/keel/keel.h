// Keel: persistent data structures in a memory-mapped file.
#pragma once

#include "keel/error.h"
#include "keel/bytes_map.h"
#include "keel/bytes_tree.h"
#include "keel/hash_map.h"
#include "keel/options.h"
#include "keel/os.h"
#include "keel/store.h"
#include "keel/tree_map.h"
#include "keel/txn.h"
#include "keel/types.h"
