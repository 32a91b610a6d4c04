import CDFSyncStorage
import Foundation

/// Applies batches on one dedicated thread while the caller keeps downloading and decoding on its own.
///
/// LMDB allows one writer and binds a write transaction to the thread that began it, so every `apply` runs
/// here, in submission order. The queue holds at most `capacity` batches, which bounds memory: a fast reader
/// blocks in `submit` until the writer catches up. A batch's checkpoint commits in the same transaction as its
/// rows, so whatever the writer managed to apply before an error or a kill is consistent.
///
/// A batch of changes, once applied, is emptied (its buffers kept) and held for the reading thread to fill
/// again (``takeSpare()``): a steady stream of batches then allocates nothing, where fresh megabyte-sized
/// buffers cost a page fault per 4 KB written into them (half of a 1 M-row full sync's page faults).
///
/// Thread-safety: all mutable state is guarded by `condition`; `PanelStore` is itself thread-safe for
/// writes (it serialises them). Hence `@unchecked Sendable`.
final class BatchWriter: @unchecked Sendable {
    private let condition = NSCondition()
    private enum Work {
        case changes(PanelStore.ChangeBatch, PanelStore.Checkpoint?)
        case job(@Sendable () throws -> PanelStore.ApplyOutcome)
    }
    private var queue: [(work: Work, rows: Int, version: Int64?)] = []
    /// Applied batches, emptied, for ``takeSpare()``; at most `capacity + 1`, so never more batches exist than
    /// the queue and the two threads hold at once.
    private var spares: [PanelStore.ChangeBatch] = []
    private var failure: (any Error)?
    private var outcome = PanelStore.ApplyOutcome()
    private var closed = false
    private var running = true
    private let capacity: Int
    private let apply: @Sendable (PanelStore.ChangeBatch, PanelStore.Checkpoint?) throws -> PanelStore.ApplyOutcome
    var onApplied: @Sendable (Int, Int64?, PanelStore.ApplyOutcome) -> Void = { _, _, _ in }

    /// A writer that applies batches to `store` under `scope`, moving `pipeline`'s checkpoint.
    convenience init(store: PanelStore, scope: String, pipeline: String, capacity: Int = 2, jitter: TimingJitter? = nil,
                     activation: PanelStore.ActivationSettings? = nil) {
        self.init(capacity: capacity) { changes, checkpoint in
            jitter?.writer()
            let outcome = try store.apply(changes, scope: scope, pipeline: pipeline, checkpoint: checkpoint,
                activation: activation)
            // Keeps resident memory flat in the size of the store (see releaseMappedPages).
            store.environment.releaseMappedPages()
            return outcome
        }
    }

    /// A writer running `apply` for every batch, on its thread, in order.
    init(capacity: Int = 2,
         apply: @escaping @Sendable (PanelStore.ChangeBatch, PanelStore.Checkpoint?) throws -> PanelStore.ApplyOutcome) {
        self.apply = apply
        self.capacity = max(1, capacity)
        let t = Thread { [self] in loop() }
        t.name = "cdfsync-writer"
        t.start()
    }

    /// Queues a batch; blocks while the queue is full. Throws the writer's error, if it failed.
    func submit(_ changes: PanelStore.ChangeBatch, checkpoint: PanelStore.Checkpoint?) throws {
        try enqueue(.changes(changes, checkpoint), rows: changes.count, version: checkpoint?.tableVersion)
    }

    /// Queues any write job (e.g. a batch of events); same ordering and bounds as batches of changes.
    func submit(rows: Int, version: Int64?, _ job: @escaping @Sendable () throws -> PanelStore.ApplyOutcome) throws {
        try enqueue(.job(job), rows: rows, version: version)
    }

    /// An applied batch, empty, with the buffers it grew to (nil if none is free).
    func takeSpare() -> PanelStore.ChangeBatch? {
        condition.lock()
        defer { condition.unlock() }
        return spares.popLast()
    }

    private func enqueue(_ work: Work, rows: Int, version: Int64?) throws {
        condition.lock()
        defer { condition.unlock() }
        while queue.count >= capacity && failure == nil { condition.wait() }
        if let failure { throw failure }
        precondition(!closed, "submit after finish")
        queue.append((work, rows, version))
        condition.broadcast()
    }

    /// Waits until every queued batch is applied and the thread has ended; returns the summed outcome.
    func finish() throws -> PanelStore.ApplyOutcome {
        let (outcome, failure) = end()
        if let failure { throw failure }
        return outcome
    }

    /// Waits like ``finish()`` but never throws: the summed outcome of the batches applied before any failure
    /// (what a failed run did to the panel, for its record).
    func drain() -> PanelStore.ApplyOutcome { end().outcome }

    private func end() -> (outcome: PanelStore.ApplyOutcome, failure: (any Error)?) {
        condition.lock()
        defer { condition.unlock() }
        closed = true
        condition.broadcast()
        while running { condition.wait() }
        return (outcome, failure)
    }

    private func loop() {
        while true {
            condition.lock()
            while queue.isEmpty && !closed { condition.wait() }
            if queue.isEmpty || failure != nil {
                running = false
                condition.broadcast()
                condition.unlock()
                return
            }
            let (work, rows, version) = queue.removeFirst()
            condition.broadcast()
            condition.unlock()
            do {
                let o: PanelStore.ApplyOutcome
                var spare: PanelStore.ChangeBatch?
                // Consumed, so the batch's buffers have one owner here and are emptied in place.
                switch consume work {
                case .changes(var changes, let checkpoint):
                    o = try apply(changes, checkpoint)
                    changes.removeAll()
                    spare = changes
                case .job(let job):
                    o = try job()
                }
                onApplied(rows, version, o)
                condition.lock()
                if let spare, spares.count <= capacity { spares.append(spare) }
                outcome += o
                condition.unlock()
            } catch {
                condition.lock()
                failure = error
                queue.removeAll()
                condition.broadcast()
                condition.unlock()
            }
        }
    }
}

/// A test hook that varies thread timing: called on the reading thread after each row, and on the writer thread
/// before each batch is applied. A sync's result must not depend on it (design §2.7); the split-invariance property
/// test injects random delays through it.
struct TimingJitter: Sendable {
    var reader: @Sendable () -> Void
    var writer: @Sendable () -> Void
}
