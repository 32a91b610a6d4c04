#ifndef CZSTD_SHIM_H
#define CZSTD_SHIM_H
/* Stable API only: ZSTD_STATIC_LINKING_ONLY must not be defined with the shared libzstd. */
#include <zstd.h>

static inline int czstd_is_error(size_t code) { return ZSTD_isError(code) ? 1 : 0; }

#endif
