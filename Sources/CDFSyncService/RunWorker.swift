import Foundation

/// The runs of one state directory, one at a time, on a thread of their own.
///
/// The engine is synchronous and blocks (statements, LMDB commits, delivery), so runs never execute on the
/// server's event loops or in the Swift concurrency pool: each state directory has this worker, which takes the
/// pipelines asked for in order. A pipeline asked for while it is already waiting is not queued twice (requests
/// coalesce); asked for while it runs, it runs once more afterwards.
final class RunWorker: @unchecked Sendable {
    // @unchecked Sendable: every mutable property is guarded by `condition`.

    /// What became of a request to run a pipeline.
    enum Enqueued: String, Sendable {
        /// Nothing was running in its state directory: it starts now.
        case started
        /// Another run of the directory (maybe its own) is in progress: it runs after it.
        case queued
        /// It was already waiting to run: the requests are one run.
        case alreadyQueued = "already_queued"
    }

    let directory: String
    private let condition = NSCondition()
    private var queue: [(pipeline: String, trigger: String)] = []
    /// Other work for the directory's writer (replays), run before the next queued pipeline.
    private var jobs: [@Sendable () -> Void] = []
    private var current: String?
    private var stopping = false
    private var stopped = false
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private let perform: @Sendable (_ pipeline: String, _ trigger: String) -> Void

    /// - Parameter perform: runs one pipeline to its end (called on the worker's thread).
    init(directory: String, perform: @escaping @Sendable (String, String) -> Void) {
        self.directory = directory
        self.perform = perform
        let thread = Thread { [self] in loop() }
        thread.name = "cdfsync-serve-run"
        // The engine's caller thread runs the run's state machine and delivery, as the CLI's main thread does.
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Asks for a run of `pipeline`; nil once the worker is stopping (a graceful shutdown began).
    func enqueue(_ pipeline: String, trigger: String) -> Enqueued? {
        condition.lock()
        defer { condition.unlock() }
        guard !stopping else { return nil }
        if queue.contains(where: { $0.pipeline == pipeline }) { return .alreadyQueued }
        let idle = current == nil && queue.isEmpty
        queue.append((pipeline, trigger))
        condition.broadcast()
        return idle ? .started : .queued
    }

    /// Queues other work that needs the directory's writer (a replay); false once the worker is stopping.
    func enqueueJob(_ job: @escaping @Sendable () -> Void) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !stopping else { return false }
        jobs.append(job)
        condition.broadcast()
        return true
    }

    /// Whether `pipeline` waits in the queue.
    func isQueued(_ pipeline: String) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return queue.contains { $0.pipeline == pipeline }
    }

    /// Lets the current run end (its cancellation is the caller's: the engine checks the service's stop flag at
    /// batch boundaries) and drops the waiting ones.
    func stop() {
        condition.lock()
        stopping = true
        queue.removeAll()
        let dropped = jobs
        jobs.removeAll()
        condition.broadcast()
        condition.unlock()
        // A job waiting for its turn still answers (it sees the service stopping and does not run).
        dropped.forEach { $0() }
    }

    /// Returns once the worker's thread has ended (after ``stop()``).
    func waitUntilStopped() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            condition.lock()
            if stopped {
                condition.unlock()
                c.resume()
            } else {
                waiters.append(c)
                condition.unlock()
            }
        }
    }

    private func loop() {
        while true {
            condition.lock()
            while queue.isEmpty && jobs.isEmpty && !stopping { condition.wait() }
            if stopping {
                stopped = true
                let w = waiters
                waiters = []
                condition.unlock()
                w.forEach { $0.resume() }
                return
            }
            if !jobs.isEmpty {
                let job = jobs.removeFirst()
                condition.unlock()
                job()
                continue
            }
            let next = queue.removeFirst()
            current = next.pipeline
            condition.unlock()
            perform(next.pipeline, next.trigger)
            condition.lock()
            current = nil
            condition.unlock()
        }
    }
}
