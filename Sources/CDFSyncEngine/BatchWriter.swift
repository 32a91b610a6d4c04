import CDFSyncStorage
import Foundation

/// Applies batches on one dedicated thread while the caller keeps downloading and decoding on its own.
///
/// LMDB allows one writer and binds a write transaction to the thread that began it, so every `apply` runs
/// here, in submission order. The queue holds at most `capacity` batches, which bounds memory: a fast reader
/// blocks in `submit` until the writer catches up. A batch's checkpoint commits in the same transaction as its
/// rows, so whatever the writer managed to apply before an error or a kill is consistent.
///
/// Thread-safety: all mutable state is guarded by `condition`; `PanelStore` is itself thread-safe for
/// writes (it serialises them). Hence `@unchecked Sendable`.
final class BatchWriter: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [(job: @Sendable () throws -> PanelStore.ApplyOutcome, rows: Int, version: Int64?)] = []
    private var failure: (any Error)?
    private var outcome = PanelStore.ApplyOutcome()
    private var closed = false
    private var running = true
    private let capacity: Int
    private let apply: @Sendable (PanelStore.ChangeBatch, PanelStore.Checkpoint?) throws -> PanelStore.ApplyOutcome
    var onApplied: @Sendable (Int, Int64?) -> Void = { _, _ in }

    /// A writer that applies batches to `store` under `scope`, moving `pipeline`'s checkpoint.
    convenience init(store: PanelStore, scope: String, pipeline: String, capacity: Int = 2) {
        self.init(capacity: capacity) { changes, checkpoint in
            let outcome = try store.apply(changes, scope: scope, pipeline: pipeline, checkpoint: checkpoint)
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
        let apply = self.apply
        try submit(rows: changes.count, version: checkpoint?.tableVersion) { try apply(changes, checkpoint) }
    }

    /// Queues any write job (e.g. a batch of events); same ordering and bounds as batches of changes.
    func submit(rows: Int, version: Int64?, _ job: @escaping @Sendable () throws -> PanelStore.ApplyOutcome) throws {
        condition.lock()
        defer { condition.unlock() }
        while queue.count >= capacity && failure == nil { condition.wait() }
        if let failure { throw failure }
        precondition(!closed, "submit after finish")
        queue.append((job, rows, version))
        condition.broadcast()
    }

    /// Waits until every queued batch is applied and the thread has ended; returns the summed outcome.
    func finish() throws -> PanelStore.ApplyOutcome {
        condition.lock()
        defer { condition.unlock() }
        closed = true
        condition.broadcast()
        while running { condition.wait() }
        if let failure { throw failure }
        return outcome
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
            let (job, rows, version) = queue.removeFirst()
            condition.broadcast()
            condition.unlock()
            do {
                let o = try job()
                onApplied(rows, version)
                condition.lock()
                outcome.inserted += o.inserted
                outcome.updated += o.updated
                outcome.unchanged += o.unchanged
                outcome.skippedOlder += o.skippedOlder
                outcome.superseded += o.superseded
                outcome.linked += o.linked
                outcome.conflicts += o.conflicts
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
