import Foundation

/// Threads of its own for an HTTP server's tasks (route handlers, middleware, the server's connection tasks): the
/// simulator's and `cdfsync serve`'s.
///
/// Not the Swift concurrency cooperative pool: a caller that talks to the server through a blocking client (libcurl,
/// a raw socket — tests do, on a 2-core machine the pool has 2 threads) holds one of those threads until the answer
/// comes, and with as many such callers as cores the server would never get a thread to answer on. Each user makes
/// one executor for the process; its threads live as long as it.
public final class DedicatedExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: `pending` and `running` are read and written only while `condition` is locked.

    private let condition = NSCondition()
    /// Jobs not yet taken, oldest first from `running` (reversed), newest appended to `pending`.
    private var pending: [UnownedJob] = []
    private var running: [UnownedJob] = []

    /// Starts `threads` threads named `name-0`, `name-1`, ….
    public init(name: String, threads: Int = max(4, 2 * ProcessInfo.processInfo.activeProcessorCount)) {
        for i in 0..<max(1, threads) {
            let t = Thread { [self] in work() }
            t.name = "\(name)-\(i)"
            t.stackSize = 1 << 20
            t.start()
        }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        pending.append(job)
        condition.signal()
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while running.isEmpty && pending.isEmpty { condition.wait() }
            if running.isEmpty {
                running = pending.reversed()
                pending.removeAll(keepingCapacity: true)
            }
            let job = running.removeLast()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
