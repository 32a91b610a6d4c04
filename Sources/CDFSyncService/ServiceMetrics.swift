import CDFSyncClient
import CDFSyncEngine
import CDFSyncStorage
import CoreMetrics
import Foundation
import Metrics
import Prometheus
import Synchronization

/// The metrics `/metrics` shows, through swift-metrics into a Prometheus registry of their own (the server's
/// factory; the engine knows nothing of metrics).
///
/// Row and statement counters move while a run goes, from its ``RunEvent``s (statements finished, batches
/// committed); when the run ends they are brought to what its record says, so that after a run every counter is the
/// sum of the run records' counts (docs/serve.md lists each metric and the record key it follows).
final class ServiceMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory

    /// Histogram buckets, in seconds.
    static let runBuckets: [Double] = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200]
    static let statementBuckets: [Double] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]

    init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = [
            "cdfsync_run_duration_seconds": Self.runBuckets.map { .milliseconds(Int64($0 * 1000)) },
            "cdfsync_statement_duration_seconds": Self.statementBuckets.map { .milliseconds(Int64($0 * 1000)) },
        ]
        self.factory = factory
    }

    /// The Prometheus text exposition of every metric.
    func render() -> [UInt8] { registry.emitToBuffer() }

    // MARK: Per-pipeline metric objects

    private struct Key: Hashable {
        var name: String
        var labels: [String]
    }

    private let counters = Mutex<[Key: CoreMetrics.Counter]>([:])
    private let meters = Mutex<[Key: CoreMetrics.Meter]>([:])
    private let timers = Mutex<[Key: CoreMetrics.Timer]>([:])

    private func counter(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Counter {
        cached(counters, name, labels) { CoreMetrics.Counter(label: name, dimensions: labels, factory: factory) }
    }

    private func meter(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Meter {
        cached(meters, name, labels) { CoreMetrics.Meter(label: name, dimensions: labels, factory: factory) }
    }

    private func timer(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Timer {
        cached(timers, name, labels) { CoreMetrics.Timer(label: name, dimensions: labels, factory: factory) }
    }

    /// The metric object of `name` with `labels` in `cache`, made by `make` the first time.
    private func cached<M: Sendable>(
        _ cache: borrowing Mutex<[Key: M]>, _ name: String, _ labels: [(String, String)], _ make: () -> M
    ) -> M {
        let key = Key(name: name, labels: labels.flatMap { [$0.0, $0.1] })
        return cache.withLock { all in
            if let m = all[key] { return m }
            let m = make()
            all[key] = m
            return m
        }
    }

    // MARK: Runs

    /// The counts a run has moved the counters by so far (from its events), so that its end adds the rest.
    struct RunTally: Sendable {
        var read = 0, applied = 0, unchanged = 0, invalid = 0, consentBlocked = 0, bytes = 0, statements = 0
    }

    private let tallies = Mutex<[String: RunTally]>([:])

    /// Zeroes the metrics a pipeline shows before its first run, so that a scrape lists it.
    func register(pipeline: String) {
        let p = [("pipeline", pipeline)]
        for name in Self.rowCounters.map(\.name) + ["cdfsync_bytes_received_total", "cdfsync_statements_total",
            "cdfsync_webhook_retries_total"]
        {
            counter(name, p).increment(by: 0)
        }
        for outcome in ["succeeded", "failed"] {
            counter("cdfsync_runs_total", p + [("outcome", outcome)]).increment(by: 0)
        }
        meter("cdfsync_run_in_progress", p).set(0)
    }

    /// The row counters and the record count each follows.
    nonisolated(unsafe) static let rowCounters: [(name: String, count: KeyPath<RunTally, Int>)] = [
        ("cdfsync_rows_read_total", \.read), ("cdfsync_rows_applied_total", \.applied),
        ("cdfsync_rows_unchanged_total", \.unchanged), ("cdfsync_rows_invalid_total", \.invalid),
        ("cdfsync_rows_consent_blocked_total", \.consentBlocked),
    ]

    func runStarted(pipeline: String) {
        tallies.withLock { $0[pipeline] = RunTally() }
        meter("cdfsync_run_in_progress", [("pipeline", pipeline)]).set(1)
    }

    /// An event of a running run (from its threads).
    func event(_ event: RunEvent, pipeline: String) {
        let p = [("pipeline", pipeline)]
        switch event {
        case .statementFinished(_, let rows, let bytes, let seconds):
            tallies.withLock { t in
                t[pipeline, default: RunTally()].statements += 1
                t[pipeline, default: RunTally()].read += rows
                t[pipeline, default: RunTally()].bytes += bytes
            }
            counter("cdfsync_statements_total", p).increment()
            counter("cdfsync_rows_read_total", p).increment(by: rows)
            counter("cdfsync_bytes_received_total", p).increment(by: bytes)
            if seconds.isFinite, seconds >= 0 {
                timer("cdfsync_statement_duration_seconds", p).recordNanoseconds(Int64(seconds * 1e9))
            }
        case .batchApplied(_, let o, _):
            let applied = o.inserted + o.updated + o.linked
            tallies.withLock { t in
                t[pipeline, default: RunTally()].applied += applied
                t[pipeline, default: RunTally()].unchanged += o.unchanged
                t[pipeline, default: RunTally()].consentBlocked += o.consentBlocked
            }
            counter("cdfsync_rows_applied_total", p).increment(by: applied)
            counter("cdfsync_rows_unchanged_total", p).increment(by: o.unchanged)
            counter("cdfsync_rows_consent_blocked_total", p).increment(by: o.consentBlocked)
        case .webhookRetry:
            counter("cdfsync_webhook_retries_total", p).increment()
        }
    }

    /// A run ended with `record` (its audit record): the counters are brought to the record's counts, the run is
    /// counted by outcome, its duration observed.
    func runEnded(pipeline: String, record: RunRecord) {
        let p = [("pipeline", pipeline)]
        let live = tallies.withLock { $0.removeValue(forKey: pipeline) } ?? RunTally()
        var final = RunTally()
        final.read = record.counts.read
        final.applied = record.counts.applied
        final.unchanged = record.counts.unchanged
        final.invalid = record.counts.invalid
        final.consentBlocked = record.counts.consentBlocked
        final.bytes = record.bytesReceived
        final.statements = record.statementIDs.count
        for (name, count) in Self.rowCounters {
            counter(name, p).increment(by: max(0, final[keyPath: count] - live[keyPath: count]))
        }
        counter("cdfsync_bytes_received_total", p).increment(by: max(0, final.bytes - live.bytes))
        counter("cdfsync_statements_total", p).increment(by: max(0, final.statements - live.statements))
        counter("cdfsync_runs_total", p + [("outcome", record.status.rawValue)]).increment()
        if record.seconds.isFinite, record.seconds >= 0 {
            timer("cdfsync_run_duration_seconds", p).recordNanoseconds(Int64(record.seconds * 1e9))
        }
        meter("cdfsync_run_in_progress", p).set(0)
    }

    /// A run that could not start or be recorded (no connection settings, another process holds the directory).
    func runNotStarted(pipeline: String) {
        tallies.withLock { _ = $0.removeValue(forKey: pipeline) }
        meter("cdfsync_run_in_progress", [("pipeline", pipeline)]).set(0)
    }

    /// An error a run (or its start) ended with, by category.
    func error(pipeline: String, category: String) {
        counter("cdfsync_errors_total", [("pipeline", pipeline), ("category", category)]).increment()
    }

    /// What an error is, for `cdfsync_errors_total{category}`: the warehouse client's category (authentication,
    /// statement canceled, …), a storage error's code, `pipeline` for the engine's own refusals, else `other`.
    static func category(of error: any Error) -> String {
        let cause = (error as? SyncFailure)?.underlying ?? error
        switch cause {
        case let e as DatabricksError: return e.category.name
        case let e as StorageError: return "storage: \(e.code)"
        case is SyncError: return "pipeline"
        default: return "other"
        }
    }

    // MARK: Gauges set at each scrape

    /// Seconds since the last applied commit of `pipeline` (nil: none known yet).
    func freshness(pipeline: String, seconds: Double?) {
        meter("cdfsync_freshness_seconds", [("pipeline", pipeline)]).set(seconds ?? .nan)
    }

    /// Seconds from the newest commit a run delivered to the end of that run.
    func commitToDelivery(pipeline: String, seconds: Double) {
        meter("cdfsync_commit_to_delivery_seconds", [("pipeline", pipeline)]).set(seconds)
    }

    func queued(pipeline: String, _ queued: Bool) {
        meter("cdfsync_run_queued", [("pipeline", pipeline)]).set(queued ? 1 : 0)
    }

    /// Changes applied to a state directory's panel and not yet written to its output.
    func undelivered(stateDirectory: String, count: Int) {
        meter("cdfsync_outbox_undelivered", [("state_dir", stateDirectory)]).set(count)
    }

    /// The state a warehouse was last seen in: 1 for that state, 0 for the others seen before.
    func warehouse(_ id: String, state: String, seenAt: Date) {
        for s in Self.warehouseStates {
            meter("cdfsync_warehouse_state", [("warehouse", id), ("state", s)]).set(s == state ? 1 : 0)
        }
        meter("cdfsync_warehouse_seen_timestamp_seconds", [("warehouse", id)]).set(seenAt.timeIntervalSince1970)
    }

    static let warehouseStates = ["STARTING", "RUNNING", "STOPPING", "STOPPED", "DELETING", "DELETED", "UNKNOWN"]
}
