/// Gives memory the C allocator holds but no longer uses back to the kernel.
///
/// An external-link chunk body is one large buffer (~22 MB for 100,000 rows) allocated on a download thread
/// and freed on the reading thread once decoded; batches are built on the reading thread and freed on the
/// writer. glibc keeps such freed memory in the arena it came from, one arena per thread, so resident memory
/// ends up as the sum of every arena's high-water mark and creeps up over a long result. heaptrack on a 3 M-row
/// full sync: 109 MB of live heap at the peak against 231 MB resident. `malloc_trim(0)` after each consumed
/// chunk returns the free pages of every arena (a few milliseconds, ten times per million rows): peak RSS of
/// a 10 M-row full sync 334 → 183 MB at the same speed (docs/benchmarks.md).
enum HeapTrim {
    static func release() {
        #if os(Linux) && canImport(Glibc)
        _ = cdfsync_malloc_trim(0)
        #endif
    }
}

#if os(Linux) && canImport(Glibc)
/// glibc's `malloc_trim` (not exported by the Glibc module map).
@_silgen_name("malloc_trim")
private func cdfsync_malloc_trim(_ pad: Int) -> Int32
#endif
