#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Keeps the memory map's resident pages bounded during a long loop of reads on one thread.
///
/// Each read fault on the map can bring in many neighbouring cached pages (the kernel's fault-around, and with
/// large page-cache folios up to a whole folio), so a loop of random probes over a large store leaves far more
/// of it resident than over a small one. The budget drops the map's pages
/// (``LMDBEnvironment/releaseMappedPages()``: one `madvise`, then the hot upper levels of each B-tree fault back
/// in) once the calling thread has taken `faults` page faults since the last drop (`getrusage(RUSAGE_THREAD)`,
/// checked every 16 ticks), and in any case every `interval` ticks. A store whose hot pages are already mapped
/// costs almost nothing; a large one is held to about `faults` fault-arounds' worth of mapped pages. Not
/// thread-safe: one per loop.
public struct MappedPageBudget {
    /// Per-row probe loops: drop after 64 faults, or at the latest every 1,024 rows.
    public static let rows = (interval: 1_024, faults: 64)
    /// Loops over large values (outbox frames of one batch each): drop after every one.
    public static let largeValues = (interval: 1, faults: Int.max)
    /// Sequential scans over small keys (the membership filter's rebuild).
    public static let scanKeys = (interval: 4_096, faults: Int.max)

    let environment: LMDBEnvironment
    let interval: Int
    let faults: Int
    private var ticks = 0
    private var faultsAtRelease: Int

    init(environment: LMDBEnvironment, interval: Int, faults: Int) {
        self.environment = environment
        self.interval = max(1, interval)
        self.faults = faults
        faultsAtRelease = faults == .max ? 0 : Self.threadFaults()
    }

    /// Call once per probe, row or value read.
    @inline(__always)
    public mutating func tick() {
        ticks &+= 1
        if ticks >= interval {
            release()
        } else if faults != .max, ticks & 15 == 0, Self.threadFaults() &- faultsAtRelease >= faults {
            release()
        }
    }

    private mutating func release() {
        ticks = 0
        environment.releaseMappedPages()
        if faults != .max { faultsAtRelease = Self.threadFaults() }
    }

    /// Minor and major page faults taken by the calling thread so far.
    static func threadFaults() -> Int {
        var usage = rusage()
        #if canImport(Glibc)
        guard getrusage(__rusage_who_t(1), &usage) == 0 else { return 0 }  // RUSAGE_THREAD (not imported)
        #else
        guard getrusage(RUSAGE_SELF, &usage) == 0 else { return 0 }
        #endif
        return usage.ru_minflt + usage.ru_majflt
    }
}
