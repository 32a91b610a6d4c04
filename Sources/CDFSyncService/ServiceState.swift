import CDFSyncEngine
import Foundation
import Synchronization

/// What the service knows of each pipeline beyond its state store: when it runs next, whether it runs or waits,
/// how its last run in this process ended, the warehouse state seen last, and the last applied commit's time.
final class ServiceState: Sendable {
    /// A warehouse's state as last read (`GET /api/2.0/sql/warehouses/{id}`: it does not wake a stopped one).
    struct WarehouseSeen: Sendable, Equatable {
        var id: String
        /// `RUNNING`, `STOPPED`, …; `UNKNOWN` when it could not be read (`error` says why).
        var state: String
        var seenAt: Date
        var error: String?
    }

    /// How a run of this process ended (the audit record says more; this also covers runs that never started).
    struct Outcome: Sendable {
        /// `succeeded`, `failed`, `busy` (another process held the state directory), `not_started` (e.g. no
        /// connection settings).
        var result: String
        var runID: UInt64?
        var endedAt: Date
        var error: String?
    }

    struct Pipeline: Sendable {
        var nextRun: Date?
        var running = false
        var runStartedAt: Date?
        /// What started the running or the last run: `schedule`, `api`.
        var trigger: String?
        var queued = false
        var lastOutcome: Outcome?
        var warehouse: WarehouseSeen?
        /// When the last commit applied to the panel was made at the source (from the run records).
        var lastCommitAt: Date?
        /// Seconds from the newest commit delivered by the last run that delivered to that run's end.
        var commitToDelivery: Double?
    }

    private let pipelines = Mutex<[String: Pipeline]>([:])
    private let flags = Mutex<(ready: Bool, stopping: Bool)>((false, false))
    /// When the service started.
    let startedAt = Date()

    func get(_ name: String) -> Pipeline { pipelines.withLock { $0[name] ?? Pipeline() } }

    func update(_ name: String, _ body: (inout Pipeline) -> Void) {
        pipelines.withLock { body(&$0[name, default: Pipeline()]) }
    }

    var all: [String: Pipeline] { pipelines.withLock { $0 } }

    /// Ready: the pipelines directory was read and the scheduler runs.
    var isReady: Bool { flags.withLock { $0.ready && !$0.stopping } }
    /// Stopping: a graceful shutdown began (SIGTERM); no new run starts.
    var isStopping: Bool { flags.withLock { $0.stopping } }
    func setReady() { flags.withLock { $0.ready = true } }
    func setStopping() { flags.withLock { $0.stopping = true } }
}
