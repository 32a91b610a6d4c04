#ifndef CLMDB_SHIM_H
#define CLMDB_SHIM_H
#include <lmdb.h>

/// MDB_* flag macros arrive in Swift as Int32; LMDB's API takes unsigned int.
static inline unsigned int clmdb_flag(int f) { return (unsigned int)f; }

/// Asks the CPU to fetch the cache line at `p` for writing (used by the storage module's membership filter to
/// overlap the cache misses of a batch's lookups; a hint only, never faults).
static inline void cdfsync_prefetch_for_write(const void *p) { __builtin_prefetch(p, 1, 3); }

#endif
