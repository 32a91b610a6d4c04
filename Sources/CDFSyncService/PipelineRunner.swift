import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import Foundation
import HTTPTypes
import Logging

/// Runs one pipeline to its end on its state directory's worker thread: looks at its warehouse, opens the state
/// store as the writer, syncs, records what happened for the API and the metrics, and says when it runs next.
struct PipelineRunner: Sendable {
    let configuration: ServeConfiguration
    let catalog: PipelineCatalog
    let state: ServiceState
    let metrics: ServiceMetrics
    let hooks: ServiceHooks
    let slot: StoreSlot
    let connections: SavedConnections

    var logger: Logger { configuration.logger }

    func run(_ name: String, trigger: String) {
        guard let entry = catalog.pipeline(named: name), let spec = entry.spec else {
            state.update(name) { p in
                p.lastOutcome = .init(result: "not_started", endedAt: Date(),
                    error: "pipeline \(name) is no longer in \(FilePaths.shown(catalog.directory)), or does not load")
            }
            return
        }
        let started = Date()
        state.update(name) { p in
            p.running = true
            p.runStartedAt = started
            p.trigger = trigger
            // Taken off the queue to run (asked for again while it runs, it is queued again).
            p.queued = false
        }
        metrics.queued(pipeline: name, false)
        metrics.runStarted(pipeline: name)
        logger.info("run started", metadata: ["pipeline": "\(name)", "trigger": "\(trigger)"])
        let outcome = perform(spec, name: name)
        let ended = Date()
        state.update(name) { p in
            p.running = false
            p.runStartedAt = nil
            p.lastOutcome = outcome.outcome
            // A run that could not start because another process held the directory tries again soon; any other
            // waits for its next boundary (a failed run too, as `cdfsync schedule` does).
            if outcome.busy {
                p.nextRun = ended.addingTimeInterval(configuration.busyRetry)
            } else if let schedule = spec.schedule {
                p.nextRun = ScheduleClock.next(after: .ran, at: ended, schedule: schedule,
                    busyRetry: configuration.busyRetry)
            } else {
                p.nextRun = nil
            }
        }
        if let record = outcome.record { noteCommits(record, pipeline: name, ended: ended) }
        logger.log(level: outcome.outcome.result == "succeeded" ? .info : .warning, "run ended", metadata: [
            "pipeline": "\(name)", "result": "\(outcome.outcome.result)",
            "run_id": "\(outcome.outcome.runID.map(String.init) ?? "none")",
            "error": "\(outcome.outcome.error ?? "")",
        ])
    }

    private struct Ended {
        var outcome: ServiceState.Outcome
        var record: RunRecord?
        var busy = false
    }

    private func perform(_ spec: Pipeline, name: String) -> Ended {
        let settings: ConnectionSettings
        do {
            settings = try settingsFor(spec)
        } catch {
            metrics.runNotStarted(pipeline: name)
            metrics.error(pipeline: name, category: ServiceMetrics.category(of: error))
            return Ended(outcome: .init(result: "not_started", endedAt: Date(), error: "\(error)"))
        }
        // The warehouse as it is before the run: reading it does not start it (the run's first statement does,
        // as a manual sync would), and nothing looks at it between runs, so a stopped warehouse stays stopped.
        seeWarehouse(settings, pipeline: name)
        defer { seeWarehouse(settings, pipeline: name) }
        do {
            let record = try slot.withWriter { store in
                var options = try SyncOptions(pipeline: spec)
                if let size = configuration.batchSize { options.batchSize = size }
                let client = StatementClient(settings: settings)
                // SIGTERM: the running statement is cancelled; the batches already read are applied and
                // checkpointed, and the run is recorded, before the process exits.
                client.isCancelled = { [state] in state.isStopping }
                var log = logger
                log[metadataKey: "pipeline"] = "\(name)"
                client.logger = log
                let sync = CDFSync(client: client, store: store, options: options)
                sync.logger = log
                sync.onEvent = { [metrics, hooks] event in
                    metrics.event(event, pipeline: name)
                    hooks.event(pipeline: name, event)
                }
                return try sync.run()
            }
            metrics.runEnded(pipeline: name, record: record)
            return Ended(outcome: .init(result: "succeeded", runID: record.runID, endedAt: Date()), record: record)
        } catch let failure as SyncFailure {
            metrics.runEnded(pipeline: name, record: failure.summary)
            metrics.error(pipeline: name, category: ServiceMetrics.category(of: failure))
            return Ended(
                outcome: .init(result: "failed", runID: failure.summary.runID, endedAt: Date(),
                    error: "\(failure.underlying)"),
                record: failure.summary)
        } catch {
            metrics.runNotStarted(pipeline: name)
            let busy = ScheduleClock.isBusy(error)
            if !busy { metrics.error(pipeline: name, category: ServiceMetrics.category(of: error)) }
            return Ended(outcome: .init(result: busy ? "busy" : "not_started", endedAt: Date(), error: "\(error)"),
                busy: busy)
        }
    }

    /// A saved connection from the service's config directory (opened once), else the command line's rules.
    func settingsFor(_ spec: Pipeline) throws -> ConnectionSettings {
        if let name = spec.connection.name { return try connections.store().resolve(name) }
        return try configuration.connectionSettings(spec)
    }

    /// A replay of `spec` (on its state directory's worker thread): its record, or why it could not run.
    func replay(_ spec: Pipeline, _ replay: ReplayOptions) -> Result<RunRecord, any Error> {
        let name = spec.name
        guard !state.isStopping else {
            return .failure(APIError(.serviceUnavailable, "the service is shutting down; the replay did not run",
                remedy: "Replay once it has restarted."))
        }
        state.update(name) { p in
            p.running = true
            p.runStartedAt = Date()
            p.trigger = replay.dryRun ? "replay (dry run)" : "replay"
        }
        metrics.runStarted(pipeline: name)
        defer { state.update(name) { p in p.running = false; p.runStartedAt = nil } }
        do {
            let settings = try settingsFor(spec)
            let record = try slot.withWriter { store in
                var options = try SyncOptions(pipeline: spec)
                if let size = configuration.batchSize { options.batchSize = size }
                let client = StatementClient(settings: settings)
                client.isCancelled = { [state] in state.isStopping }
                let sync = CDFSync(client: client, store: store, options: options)
                sync.onEvent = { [metrics] event in metrics.event(event, pipeline: name) }
                return try sync.replay(replay)
            }
            metrics.runEnded(pipeline: name, record: record)
            logger.info("replay ended", metadata: ["pipeline": "\(name)", "run_id": "\(record.runID)",
                "dry_run": "\(replay.dryRun)"])
            return .success(record)
        } catch let failure as SyncFailure {
            metrics.runEnded(pipeline: name, record: failure.summary)
            metrics.error(pipeline: name, category: ServiceMetrics.category(of: failure))
            return .failure(failure)
        } catch {
            metrics.runNotStarted(pipeline: name)
            return .failure(error)
        }
    }

    /// Reads the warehouse's state (one request, not retried) for the API and the metrics.
    private func seeWarehouse(_ settings: ConnectionSettings, pipeline: String) {
        let client = WarehousesClient(settings: settings)
        var retry = client.retryPolicy
        retry.maxAttempts = 1
        client.retryPolicy = retry
        let seen: ServiceState.WarehouseSeen
        do {
            let w = try client.warehouse()
            seen = .init(id: settings.warehouseID, state: w.state.uppercased(), seenAt: Date())
        } catch {
            seen = .init(id: settings.warehouseID, state: "UNKNOWN", seenAt: Date(), error: "\(error)")
        }
        state.update(pipeline) { $0.warehouse = seen }
        metrics.warehouse(seen.id, state: seen.state, seenAt: seen.seenAt)
    }

    /// The last applied commit's time (freshness), and how long the newest commit took to be delivered.
    private func noteCommits(_ record: RunRecord, pipeline: String, ended: Date) {
        guard let committed = Self.lastCommit(of: record) else { return }
        state.update(pipeline) { p in
            if p.lastCommitAt.map({ committed > $0 }) ?? true { p.lastCommitAt = committed }
            if record.counts.delivered > 0 {
                p.commitToDelivery = ended.timeIntervalSince(committed)
            }
        }
        if record.counts.delivered > 0 {
            metrics.commitToDelivery(pipeline: pipeline, seconds: ended.timeIntervalSince(committed))
        }
    }

    /// When the newest change a run applied was committed at the source: the commit time of its last version, or
    /// in watermark mode the cursor it reached.
    static func lastCommit(of record: RunRecord) -> Date? {
        let text = record.lastCommitAt ?? (record.mode == .watermark ? record.watermark : nil)
        guard let text, let micros = Timestamps.micros(text) else { return nil }
        return Date(timeIntervalSince1970: Double(micros) / 1_000_000)
    }
}

/// Test seams: what the tests of the service observe (and may hold) on a run's threads. Nothing in production
/// sets them.
final class ServiceHooks: @unchecked Sendable {
    // @unchecked Sendable: `onEvent` is set before the server starts and only read afterwards.
    var onEvent: (@Sendable (String, RunEvent) -> Void)?

    func event(pipeline: String, _ event: RunEvent) { onEvent?(pipeline, event) }
}
