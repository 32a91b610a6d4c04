#ifndef CLMDB_SHIM_H
#define CLMDB_SHIM_H
#include <lmdb.h>

/// MDB_* flag macros arrive in Swift as Int32; LMDB's API takes unsigned int.
static inline unsigned int clmdb_flag(int f) { return (unsigned int)f; }

#endif
