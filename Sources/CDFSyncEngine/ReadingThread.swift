import CDFSyncCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Runs a statement's reading — download and decode, and the batches it hands to the writer — on a thread of its
/// own, scheduled below the writer and the outbox compressors.
///
/// A sync's critical path is the writer's chain: each batch's apply, the compression of its outbox frames (which
/// must finish before the commit) and the durable commit. The reading side is faster and spends much of a sync
/// blocked on the writer's full queue; when it is runnable at the same time as the writer or the compressors, an
/// equal share of the two cores only delays the chain. At nice +10 the reading thread gets the cores the chain
/// leaves — during commits, and whenever the queue has room — which is all it needs (design §6). Measured on the
/// 1 M-row full sync (docs/benchmarks.md item 21): result-cached wall −10 %, cold −7 to −13 %. A replay, where
/// reading *is* the critical path, is not slowed beyond the noise: it has nothing on the writer's side to yield to.
///
/// The niceness is the thread's own (Linux schedules threads individually), so the calling thread keeps its
/// priority: a process may lower a thread's priority but not raise it again, and a long-running `schedule` must not
/// lose priority with every run. Threads the reading thread starts (the link downloads) inherit it.
public enum ReadingThread {
    /// Niceness added to the reading thread by default.
    public static let defaultNiceness: Int32 = 10
    /// Stack of the reading thread: the same as a main thread's (8 MB), not `Thread`'s smaller default.
    static let stackSize = 8 << 20

    /// Runs `body` on a new thread at the current niceness + `niceness` and returns what it returns (or throws what
    /// it throws); with `niceness` ≤ 0, on the calling thread.
    public static func run<R>(niceness: Int32, _ body: () throws -> R) throws -> R {
        guard niceness > 0 else { return try body() }
        return try withoutActuallyEscaping(body) { body in
            let handoff = Handoff<R>(body)
            let thread = Thread { [handoff] in
                #if canImport(Glibc)
                // `who` 0 with PRIO_PROCESS is the calling thread on Linux. A failure only leaves the priority
                // as it was.
                let current = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
                _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, min(19, current + niceness))
                #endif
                handoff.run()
            }
            thread.name = "cdfsync-read"
            thread.stackSize = stackSize
            thread.start()
            return try handoff.wait()
        }
    }

    /// The work, passed to the reading thread, and its outcome, passed back through a ``ResultLatch`` the caller
    /// waits on.
    private final class Handoff<R>: @unchecked Sendable {
        // @unchecked Sendable: `body` is read and released by the reading thread only, before it sets the latch;
        // the caller touches nothing but the latch.
        /// Released by the reading thread before it sets the latch: the `Thread` may outlive `run(niceness:_:)` by
        /// a moment, and must not hold the (not really escaping) closure then.
        private var body: (() throws -> R)?
        private let outcome = ResultLatch<R>()

        init(_ body: @escaping () throws -> R) { self.body = body }

        func run() {
            outcome.set(perform())
        }

        @inline(never)
        private func perform() -> Result<R, any Error> {
            defer { body = nil }
            return Result { try body!() }
        }

        func wait() throws -> R { try outcome.wait() }
    }
}
