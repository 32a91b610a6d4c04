import Foundation

/// The threads the simulator's server runs its tasks on: route handlers, middleware, and Hummingbird's own
/// connection tasks.
///
/// Not the Swift concurrency cooperative pool: a test that calls the simulator through a blocking client (libcurl,
/// a raw socket) holds one of those threads until the answer comes, and with as many such tests as cores the
/// simulator would never get a thread to answer on. Handlers are short (the SQL engine, rendering); nothing in
/// them sleeps (waiting for a statement suspends the task). One pool for the process; its threads live as long as it.
final class ServingExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: `pending` and `running` are read and written only while `condition` is locked.
    static let shared = ServingExecutor(threads: max(4, 2 * ProcessInfo.processInfo.activeProcessorCount))

    private let condition = NSCondition()
    /// Jobs not yet taken, oldest first from `running` (reversed), newest appended to `pending`.
    private var pending: [UnownedJob] = []
    private var running: [UnownedJob] = []

    private init(threads: Int) {
        for i in 0..<threads {
            let t = Thread { [self] in work() }
            t.name = "dbsql-sim-\(i)"
            t.stackSize = 1 << 20
            t.start()
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
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
